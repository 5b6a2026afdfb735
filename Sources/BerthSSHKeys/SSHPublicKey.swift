import BerthSSHWire
import Crypto
import _CryptoExtras
import Foundation
import NIOCore

/// The key kinds Berth can generate, load and sign with.
public enum SSHKeyKind: Sendable, Hashable {
    case ed25519
    case ecdsaP256
    case ecdsaP384
    case ecdsaP521
    case rsa(bits: Int)
}

/// A public key in SSH wire form (RFC 4253 §6.6): host keys and user keys.
public struct SSHPublicKey: Sendable, Hashable {
    public private(set) var keyType: String
    /// The canonical public key blob (`string key-type, …`).
    public private(set) var blob: [UInt8]
    let backing: Backing

    enum Backing: Sendable {
        case ed25519(Curve25519.Signing.PublicKey)
        case p256(P256.Signing.PublicKey)
        case p384(P384.Signing.PublicKey)
        case p521(P521.Signing.PublicKey)
        case rsa(_RSA.Signing.PublicKey, modulusBytes: Int)
    }

    init(keyType: String, blob: [UInt8], backing: Backing) {
        self.keyType = keyType
        self.blob = blob
        self.backing = backing
    }

    /// Parses a public key blob. Throws SSHKeyError: SSH_KEY_UNSUPPORTED_TYPE for key types Berth
    /// does not use (ssh-dss, sk-…@openssh.com, certificates), SSH_KEY_MALFORMED for bad encodings
    /// and invalid points, SSH_KEY_RSA_TOO_SMALL below 1024 bits.
    public init(blob: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: blob)
        guard let type = buffer.readSSHText() else { throw SSHKeyError.malformed("public key blob without a key type") }
        let backing: Backing
        switch type {
        case "ssh-ed25519":
            guard let raw = buffer.readSSHStringBytes() else { throw SSHKeyError.malformed("ssh-ed25519 blob without a key") }
            guard raw.count == 32 else { throw SSHKeyError.malformed("ssh-ed25519 public key has \(raw.count) bytes, not 32") }
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: raw) else { throw SSHKeyError.malformed("invalid ssh-ed25519 public key") }
            backing = .ed25519(key)
        case let type where ECDSACurve(keyType: type) != nil:
            let curve = ECDSACurve(keyType: type)!
            guard let identifier = buffer.readSSHText(), let point = buffer.readSSHStringBytes() else {
                throw SSHKeyError.malformed("\(type) blob is truncated")
            }
            guard identifier == curve.identifier else {
                throw SSHKeyError.malformed("\(type) blob names curve \"\(SSHKeyError.printable(identifier))\"")
            }
            backing = try curve.publicKey(point: point)
        case "ssh-rsa":
            guard let e = try buffer.readStrictMPInt("RSA exponent"), let n = try buffer.readStrictMPInt("RSA modulus") else {
                throw SSHKeyError.malformed("ssh-rsa blob is truncated")
            }
            backing = try Self.rsaBacking(n: n, e: e)
        default:
            throw SSHKeyError.unsupportedType(type)
        }
        guard buffer.readableBytes == 0 else { throw SSHKeyError.malformed("\(type) blob has \(buffer.readableBytes) trailing bytes") }
        self.init(keyType: type, blob: blob, backing: backing)
    }

    static func rsaBacking(n: [UInt8], e: [UInt8]) throws -> Backing {
        let bits = bitCount(n)
        guard bits >= RSAKeyLimits.minimumBits else {
            throw SSHKeyError.rsaTooSmall(bits: bits, minimum: RSAKeyLimits.minimumBits, usage: "SSH")
        }
        guard bits <= RSAKeyLimits.maximumBits else { throw SSHKeyError.rsaTooLarge(bits: bits) }
        // swift-crypto's (n, e) initialiser stops at 2048 bits; OpenSSH still accepts 1024-bit user
        // keys, so smaller moduli go through the "unsafe" DER path (PKCS#1 RSAPublicKey).
        let der = DERWriter.sequence([DERWriter.unsignedInteger(n), DERWriter.unsignedInteger(e)])
        guard let key = try? _RSA.Signing.PublicKey(unsafeDERRepresentation: der) else {
            throw SSHKeyError.malformed("invalid RSA public key (modulus or exponent rejected)")
        }
        return .rsa(key, modulusBytes: (bits + 7) / 8)
    }

    /// Parses `TYPE BASE64 [comment]` as in authorized_keys and `.pub` files. Options before the
    /// type (`from="…" ssh-ed25519 …`) are refused rather than silently dropped.
    public init(authorizedKeysText: String) throws {
        let fields = authorizedKeysText.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" })
        guard fields.count >= 2 else { throw SSHKeyError.malformed("expected \"TYPE BASE64 [comment]\"") }
        let type = String(fields[0])
        guard let blob = Data(base64Encoded: String(fields[1])) else {
            if type.contains("=") || type.contains("\"") || type.contains(",") {
                throw SSHKeyError.unsupportedFormat("authorized_keys options are not supported here; give \"TYPE BASE64 [comment]\"")
            }
            throw SSHKeyError.malformed("key data of \(SSHKeyError.printable(type)) is not base64")
        }
        try self.init(blob: Array(blob))
        guard keyType == type else {
            throw SSHKeyError.malformed("line says \(SSHKeyError.printable(type)) but the key data is \(keyType)")
        }
    }

    /// `TYPE BASE64`, as in authorized_keys (no comment).
    public var authorizedKeysText: String {
        "\(keyType) \(Data(blob).base64EncodedString())"
    }

    /// `SHA256:…` as `ssh-keygen -l` prints it.
    public var fingerprintSHA256: String {
        let digest = Data(SHA256.hash(data: blob)).base64EncodedString()
        return "SHA256:" + digest.replacingOccurrences(of: "=", with: "")
    }

    /// Signature algorithms that may sign with this key type, preferred first.
    public var signatureAlgorithms: [String] {
        switch backing {
        case .rsa: return RSASignatureAlgorithm.names
        default: return [keyType]
        }
    }

    /// Verifies a signature blob (`string algorithm, string signature`) over `data`. False for
    /// any malformed blob, a wrong algorithm for the key (an ECDSA signature for another curve,
    /// an RSA algorithm other than rsa-sha2-512/256 and ssh-rsa) and trailing bytes.
    public func verify(signatureBlob: [UInt8], over data: [UInt8]) -> Bool {
        var buffer = ByteBuffer(bytes: signatureBlob)
        guard let algorithm = buffer.readSSHText(), let signature = buffer.readSSHStringBytes(), buffer.readableBytes == 0 else {
            return false
        }
        switch backing {
        case .ed25519(let key):
            guard algorithm == keyType, signature.count == 64 else { return false }
            return key.isValidSignature(signature, for: data)
        case .p256(let key):
            guard algorithm == keyType, let raw = ECDSACurve.p256.rawSignature(signature) else { return false }
            guard let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
            return key.isValidSignature(parsed, for: data)
        case .p384(let key):
            guard algorithm == keyType, let raw = ECDSACurve.p384.rawSignature(signature) else { return false }
            guard let parsed = try? P384.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
            return key.isValidSignature(parsed, for: data)
        case .p521(let key):
            guard algorithm == keyType, let raw = ECDSACurve.p521.rawSignature(signature) else { return false }
            guard let parsed = try? P521.Signing.ECDSASignature(rawRepresentation: raw) else { return false }
            return key.isValidSignature(parsed, for: data)
        case .rsa(let key, let modulusBytes):
            guard let hash = RSASignatureAlgorithm(rawValue: algorithm) else { return false }
            // OpenSSH accepts a signature shorter than the modulus and left-pads it (some
            // implementations strip leading zeros); BoringSSL wants exactly the modulus length.
            guard signature.count <= modulusBytes, !signature.isEmpty else { return false }
            let padded = [UInt8](repeating: 0, count: modulusBytes - signature.count) + signature
            let rsaSignature = _RSA.Signing.RSASignature(rawRepresentation: padded)
            switch hash {
            case .sha512: return key.isValidSignature(rsaSignature, for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
            case .sha256: return key.isValidSignature(rsaSignature, for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
            case .sha1: return key.isValidSignature(rsaSignature, for: Insecure.SHA1.hash(data: data), padding: .insecurePKCS1v1_5)
            }
        }
    }

    public static func == (lhs: SSHPublicKey, rhs: SSHPublicKey) -> Bool { lhs.blob == rhs.blob }
    public func hash(into hasher: inout Hasher) { hasher.combine(blob) }

    static func bitCount(_ magnitude: [UInt8]) -> Int {
        guard let first = magnitude.first(where: { $0 != 0 }) else { return 0 }
        let significant = magnitude.count - (magnitude.firstIndex(of: first) ?? 0)
        return significant * 8 - first.leadingZeroBitCount
    }
}

/// RFC 8332 signature algorithms for ssh-rsa keys, plus RFC 4253's SHA-1 `ssh-rsa`.
enum RSASignatureAlgorithm: String {
    case sha512 = "rsa-sha2-512"
    case sha256 = "rsa-sha2-256"
    case sha1 = "ssh-rsa"

    static let names = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
}

/// RFC 5656 curves: the key type, the curve identifier in blobs, the field element size.
struct ECDSACurve {
    let keyType: String
    let identifier: String
    let coordinateBytes: Int

    static let p256 = ECDSACurve(keyType: "ecdsa-sha2-nistp256", identifier: "nistp256", coordinateBytes: 32)
    static let p384 = ECDSACurve(keyType: "ecdsa-sha2-nistp384", identifier: "nistp384", coordinateBytes: 48)
    static let p521 = ECDSACurve(keyType: "ecdsa-sha2-nistp521", identifier: "nistp521", coordinateBytes: 66)

    init(keyType: String, identifier: String, coordinateBytes: Int) {
        self.keyType = keyType
        self.identifier = identifier
        self.coordinateBytes = coordinateBytes
    }

    init?(keyType: String) {
        switch keyType {
        case Self.p256.keyType: self = .p256
        case Self.p384.keyType: self = .p384
        case Self.p521.keyType: self = .p521
        default: return nil
        }
    }

    init?(identifier: String) {
        switch identifier {
        case Self.p256.identifier: self = .p256
        case Self.p384.identifier: self = .p384
        case Self.p521.identifier: self = .p521
        default: return nil
        }
    }

    /// Public key from an uncompressed SEC1 point; OpenSSH sends and accepts only that form.
    func publicKey(point: [UInt8]) throws -> SSHPublicKey.Backing {
        guard point.count == 1 + 2 * coordinateBytes, point.first == 0x04 else {
            throw SSHKeyError.malformed("\(keyType) point is not an uncompressed \(identifier) point (\(point.count) bytes)")
        }
        do {
            switch coordinateBytes {
            case 32: return .p256(try P256.Signing.PublicKey(x963Representation: point))
            case 48: return .p384(try P384.Signing.PublicKey(x963Representation: point))
            default: return .p521(try P521.Signing.PublicKey(x963Representation: point))
            }
        } catch {
            throw SSHKeyError.malformed("\(keyType) point is not on the curve")
        }
    }

    /// RFC 5656 §3.1.2 signature body (`mpint r, mpint s`) as fixed-width r || s; nil if malformed.
    func rawSignature(_ body: [UInt8]) -> [UInt8]? {
        var buffer = ByteBuffer(bytes: body)
        guard let r = buffer.readSSHMPIntBytes(), let s = buffer.readSSHMPIntBytes(), buffer.readableBytes == 0,
            let rMagnitude = SSHMPInt.decodeUnsigned(r), let sMagnitude = SSHMPInt.decodeUnsigned(s),
            !rMagnitude.isEmpty, !sMagnitude.isEmpty,
            rMagnitude.count <= coordinateBytes, sMagnitude.count <= coordinateBytes
        else { return nil }
        var raw = [UInt8](repeating: 0, count: 2 * coordinateBytes)
        raw.replaceSubrange((coordinateBytes - rMagnitude.count)..<coordinateBytes, with: rMagnitude)
        raw.replaceSubrange((2 * coordinateBytes - sMagnitude.count)..<(2 * coordinateBytes), with: sMagnitude)
        return raw
    }

    /// RFC 5656 signature body from fixed-width r || s.
    func signatureBody(raw: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeSSHMPInt(unsignedBigEndian: raw[0..<coordinateBytes])
        buffer.writeSSHMPInt(unsignedBigEndian: raw[coordinateBytes...])
        return Array(buffer.readableBytesView)
    }
}

extension ByteBuffer {
    /// An mpint that must be non-negative and minimally encoded, as OpenSSH writes it; returns
    /// its magnitude. nil when truncated. Non-canonical forms are refused so that one key has
    /// one blob (keys are compared by blob).
    mutating func readStrictMPInt(_ what: String) throws -> [UInt8]? {
        guard let body = readSSHMPIntBytes() else { return nil }
        if let first = body.first {
            guard first & 0x80 == 0 else { throw SSHKeyError.malformed("\(what) is negative") }
            if first == 0 && (body.count == 1 || body[1] & 0x80 == 0) {
                throw SSHKeyError.malformed("\(what) has a superfluous leading zero")
            }
        }
        return body.first == 0 ? Array(body.dropFirst()) : body
    }
}
