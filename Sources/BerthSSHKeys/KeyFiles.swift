import BerthSSHWire
import Crypto
import _CryptoExtras
import Foundation
import NIOCore

/// `-----BEGIN LABEL-----` … `-----END LABEL-----` with optional RFC 1421 headers.
struct PEMArmour {
    var label: String
    var headers: [String]
    var body: [UInt8]

    /// Key files are small; anything much larger is not a key and is refused before decoding.
    static let maximumLength = 1 << 20

    init(text: String) throws {
        guard text.utf8.count <= Self.maximumLength else { throw SSHKeyError.malformed("key text is larger than 1 MiB") }
        let lines = text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
        guard let beginIndex = lines.firstIndex(where: { $0.hasPrefix("-----BEGIN ") && $0.hasSuffix("-----") && $0.count >= 16 }) else {
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.hasPrefix("ssh-") || trimmed.hasPrefix("ecdsa-") || trimmed.hasPrefix("sk-") {
                throw SSHKeyError.unsupportedFormat("this is a public key; give the private key")
            }
            throw SSHKeyError.malformed("no \"-----BEGIN … PRIVATE KEY-----\" line")
        }
        let begin = lines[beginIndex]
        let label = String(begin.dropFirst(11).dropLast(5))
        let end = "-----END \(label)-----"
        guard let endIndex = lines[(beginIndex + 1)...].firstIndex(of: end) else {
            throw SSHKeyError.malformed("no \"\(SSHKeyError.printable(end))\" line")
        }
        var headers: [String] = []
        var base64 = ""
        for line in lines[(beginIndex + 1)..<endIndex] {
            if base64.isEmpty && line.contains(":") {
                headers.append(line)
            } else {
                base64 += line
            }
        }
        guard let body = Data(base64Encoded: base64) else { throw SSHKeyError.malformed("\(SSHKeyError.printable(label)) body is not valid base64") }
        self.label = label
        self.headers = headers
        self.body = Array(body)
    }
}

/// OpenSSH's `openssh-key-v1` private key format (PROTOCOL.key in OpenSSH's sources).
enum OpenSSHKeyFile {
    static let armourBegin = "-----BEGIN OPENSSH PRIVATE KEY-----"
    static let armourEnd = "-----END OPENSSH PRIVATE KEY-----"
    static let magic = Array("openssh-key-v1".utf8) + [0]
    /// Cipher "none" pads the private section to 8 bytes.
    static let blockSize = 8

    static func parse(_ bytes: [UInt8]) throws -> SSHPrivateKey {
        guard bytes.starts(with: magic) else { throw SSHKeyError.malformed("not an openssh-key-v1 key (bad magic)") }
        var file = ByteBuffer(bytes: bytes[magic.count...])
        guard let cipher = file.readSSHText(), let kdf = file.readSSHText(), file.readSSHString() != nil else {
            throw SSHKeyError.malformed("openssh-key-v1 header is truncated")
        }
        guard cipher == "none", kdf == "none" else { throw SSHKeyError.encrypted }
        guard let count = file.readSSHUInt32() else { throw SSHKeyError.malformed("openssh-key-v1 header is truncated") }
        guard count == 1 else { throw SSHKeyError.unsupportedFormat("file holds \(count) keys; exactly one is supported") }
        guard let publicBlob = file.readSSHStringBytes(), var secret = file.readSSHString() else {
            throw SSHKeyError.malformed("openssh-key-v1 key sections are truncated")
        }
        guard file.readableBytes == 0 else { throw SSHKeyError.malformed("openssh-key-v1 file has trailing data") }
        guard secret.readableBytes % blockSize == 0 else { throw SSHKeyError.malformed("private section is not padded to \(blockSize) bytes") }
        guard let check1 = secret.readSSHUInt32(), let check2 = secret.readSSHUInt32() else {
            throw SSHKeyError.malformed("private section is truncated")
        }
        guard check1 == check2 else { throw SSHKeyError.malformed("check integers differ (corrupt file)") }
        guard let type = secret.readSSHText() else { throw SSHKeyError.malformed("private section is truncated") }
        let backing = try readPrivate(type: type, from: &secret)
        guard let comment = secret.readSSHText() else { throw SSHKeyError.malformed("private section is truncated (comment)") }
        // Padding is 1, 2, 3, …; OpenSSH checks it too, so a mismatch means a damaged file.
        for (index, byte) in secret.readableBytesView.enumerated() where Int(byte) != index + 1 {
            throw SSHKeyError.malformed("private section padding is wrong")
        }
        guard secret.readableBytesView.count < blockSize else { throw SSHKeyError.malformed("private section padding is too long") }
        let key = try SSHPrivateKey(backing: backing, comment: comment)
        guard key.publicKeyBlob == publicBlob else {
            throw SSHKeyError.mismatch("the public key in the file does not belong to its private key")
        }
        return key
    }

    private static func readPrivate(type: String, from secret: inout ByteBuffer) throws -> SSHPrivateKey.Backing {
        func truncated() -> SSHKeyError { SSHKeyError.malformed("\(type) private key is truncated") }
        switch type {
        case "ssh-ed25519":
            guard let publicBytes = secret.readSSHStringBytes(), let privateBytes = secret.readSSHStringBytes() else { throw truncated() }
            guard publicBytes.count == 32, privateBytes.count == 64 else {
                throw SSHKeyError.malformed("ssh-ed25519 key parts have \(publicBytes.count) and \(privateBytes.count) bytes, not 32 and 64")
            }
            guard Array(privateBytes[32...]) == publicBytes else { throw SSHKeyError.mismatch("ssh-ed25519 private part does not end with its public key") }
            guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: privateBytes[..<32]) else {
                throw SSHKeyError.malformed("ssh-ed25519 seed is invalid")
            }
            guard Array(key.publicKey.rawRepresentation) == publicBytes else { throw SSHKeyError.mismatch("ssh-ed25519 seed does not give the stored public key") }
            return .ed25519(key)
        case let type where ECDSACurve(keyType: type) != nil:
            let curve = ECDSACurve(keyType: type)!
            guard let identifier = secret.readSSHText(), let point = secret.readSSHStringBytes(), let scalarBody = secret.readSSHMPIntBytes() else {
                throw truncated()
            }
            guard identifier == curve.identifier else { throw SSHKeyError.malformed("\(type) key names curve \"\(SSHKeyError.printable(identifier))\"") }
            guard let scalar = SSHMPInt.decodeUnsigned(scalarBody), !scalar.isEmpty, scalar.count <= curve.coordinateBytes else {
                throw SSHKeyError.malformed("\(type) private scalar is out of range")
            }
            let raw = [UInt8](repeating: 0, count: curve.coordinateBytes - scalar.count) + scalar
            let backing: SSHPrivateKey.Backing
            let derived: Data
            do {
                switch curve.coordinateBytes {
                case 32: let key = try P256.Signing.PrivateKey(rawRepresentation: raw); backing = .p256(key); derived = key.publicKey.x963Representation
                case 48: let key = try P384.Signing.PrivateKey(rawRepresentation: raw); backing = .p384(key); derived = key.publicKey.x963Representation
                default: let key = try P521.Signing.PrivateKey(rawRepresentation: raw); backing = .p521(key); derived = key.publicKey.x963Representation
                }
            } catch {
                throw SSHKeyError.malformed("\(type) private scalar is invalid")
            }
            guard Array(derived) == point else { throw SSHKeyError.mismatch("\(type) private scalar does not give the stored point") }
            return backing
        case "ssh-rsa":
            var numbers: [[UInt8]] = []
            for name in ["n", "e", "d", "iqmp", "p", "q"] {
                guard let body = secret.readSSHMPIntBytes() else { throw truncated() }
                guard let value = SSHMPInt.decodeUnsigned(body), !value.isEmpty else { throw SSHKeyError.malformed("RSA \(name) is not a positive number") }
                numbers.append(value)
            }
            let (n, e, d, p, q) = (numbers[0], numbers[1], numbers[2], numbers[4], numbers[5])
            let bits = SSHPublicKey.bitCount(n)
            guard bits >= RSAKeyLimits.minimumPrivateBits else {
                throw SSHKeyError.rsaTooSmall(bits: bits, minimum: RSAKeyLimits.minimumPrivateBits, usage: "a host or private key")
            }
            guard bits <= RSAKeyLimits.maximumBits else { throw SSHKeyError.rsaTooLarge(bits: bits) }
            // Every other number of a real key is below n; bounding them keeps a crafted file
            // from making BoringSSL reduce megabyte-sized numbers.
            guard numbers.allSatisfy({ $0.count <= n.count }) else { throw SSHKeyError.malformed("RSA numbers are larger than the modulus") }
            // swift-crypto derives dP, dQ and qInv itself and BoringSSL checks that the numbers
            // form a consistent key; OpenSSH's stored iqmp is redundant and is not trusted.
            let key: _RSA.Signing.PrivateKey
            do {
                key = try _RSA.Signing.PrivateKey(n: n, e: e, d: d, p: p, q: q)
            } catch {
                throw SSHKeyError.malformed("RSA numbers do not form a valid key")
            }
            return try SSHPrivateKey.rsaKey(key).backing
        case "ssh-dss", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com":
            throw SSHKeyError.unsupportedType(type)
        default:
            throw SSHKeyError.unsupportedType(type)
        }
    }

    static func serialize(_ key: SSHPrivateKey, comment: String) -> String {
        var secret = ByteBuffer()
        let check = UInt32.random(in: .min ... .max)
        secret.writeSSHUInt32(check)
        secret.writeSSHUInt32(check)
        secret.writeSSHText(key.keyType)
        switch key.backing {
        case .ed25519(let privateKey):
            let publicBytes = Array(privateKey.publicKey.rawRepresentation)
            secret.writeSSHString(publicBytes)
            secret.writeSSHString(Array(privateKey.rawRepresentation) + publicBytes)
        case .p256(let privateKey):
            writeECDSA(.p256, point: privateKey.publicKey.x963Representation, scalar: privateKey.rawRepresentation, into: &secret)
        case .p384(let privateKey):
            writeECDSA(.p384, point: privateKey.publicKey.x963Representation, scalar: privateKey.rawRepresentation, into: &secret)
        case .p521(let privateKey):
            writeECDSA(.p521, point: privateKey.publicKey.x963Representation, scalar: privateKey.rawRepresentation, into: &secret)
        case .rsa(_, let numbers):
            for value in [numbers.n, numbers.e, numbers.d, numbers.iqmp, numbers.p, numbers.q] {
                secret.writeSSHMPInt(unsignedBigEndian: value)
            }
        }
        secret.writeSSHText(comment)
        var padding: UInt8 = 1
        while secret.readableBytes % blockSize != 0 {
            secret.writeSSHUInt8(padding)
            padding += 1
        }
        var file = ByteBuffer()
        file.writeBytes(magic)
        file.writeSSHText("none")
        file.writeSSHText("none")
        file.writeSSHText("")
        file.writeSSHUInt32(1)
        file.writeSSHString(key.publicKeyBlob)
        file.writeSSHString(secret)
        let body = Data(file.readableBytesView).base64EncodedString()
        var lines = [armourBegin]
        var index = body.startIndex
        while index < body.endIndex {
            let end = body.index(index, offsetBy: 70, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(String(body[index..<end]))
            index = end
        }
        lines.append(armourEnd)
        return lines.joined(separator: "\n") + "\n"
    }

    private static func writeECDSA(_ curve: ECDSACurve, point: Data, scalar: Data, into secret: inout ByteBuffer) {
        secret.writeSSHText(curve.identifier)
        secret.writeSSHString(point)
        secret.writeSSHMPInt(unsignedBigEndian: scalar)
    }
}

/// PEM private keys; swift-crypto decodes them, this picks the right decoder.
enum PEMKeyFile {
    static func parse(label: String, der: [UInt8]) throws -> SSHPrivateKey {
        switch label {
        case "RSA PRIVATE KEY":
            return try rsa(der: der)
        case "EC PRIVATE KEY":
            return try sec1(der: der)
        default:
            return try pkcs8(der: der)
        }
    }

    private static func rsa(der: [UInt8]) throws -> SSHPrivateKey {
        // The "unsafe" initialiser takes 1024-bit keys too, so that a small key gets the
        // specific too-small error instead of a generic decoding failure.
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(unsafeDERRepresentation: der)
        } catch {
            throw SSHKeyError.malformed("not a valid RSA private key of at least \(RSAKeyLimits.minimumBits) bits")
        }
        return try SSHPrivateKey.rsaKey(key)
    }

    /// RFC 5915 ECPrivateKey: version 1, the scalar, [0] curve OID, [1] public point.
    private static func sec1(der: [UInt8]) throws -> SSHPrivateKey {
        var outer = DERReader(der)
        var sequence = try outer.readSequence("ECPrivateKey")
        _ = try sequence.readUnsignedInteger("ECPrivateKey version")
        let scalar = try sequence.read(tag: 0x04, "ECPrivateKey scalar")
        var curveOID: [UInt8]?
        while !sequence.isAtEnd {
            let (tag, content) = try sequence.read()
            if tag == 0xA0 {
                var parameters = DERReader(content)
                curveOID = try parameters.readOID("ECPrivateKey curve")
            }
        }
        return try ecdsa(curveOID: curveOID, scalarLength: scalar.count, der: der)
    }

    /// RFC 5208/5958 PrivateKeyInfo: version, AlgorithmIdentifier, OCTET STRING key, ….
    private static func pkcs8(der: [UInt8]) throws -> SSHPrivateKey {
        var outer = DERReader(der)
        var sequence = try outer.readSequence("PrivateKeyInfo")
        _ = try sequence.readUnsignedInteger("PrivateKeyInfo version")
        var algorithm = try sequence.readSequence("PrivateKeyInfo algorithm")
        let oid = try algorithm.readOID("PrivateKeyInfo algorithm")
        switch oid {
        case KeyOID.rsaEncryption:
            return try rsa(der: der)
        case KeyOID.ecPublicKey:
            let curve = try algorithm.isAtEnd ? nil : algorithm.readOID("EC curve")
            return try ecdsa(curveOID: curve, scalarLength: nil, der: der)
        case KeyOID.ed25519:
            do {
                return try SSHPrivateKey(backing: .ed25519(try Curve25519.Signing.PrivateKey(derRepresentation: der)))
            } catch let error as SSHKeyError {
                throw error
            } catch {
                throw SSHKeyError.malformed("not a valid Ed25519 PKCS#8 key")
            }
        case KeyOID.ed448:
            throw SSHKeyError.unsupportedType("Ed448")
        case KeyOID.dsa:
            throw SSHKeyError.unsupportedType("ssh-dss")
        default:
            let dotted = oid.map { String(format: "%02x", $0) }.joined()
            throw SSHKeyError.unsupportedType("PKCS#8 algorithm OID \(dotted)")
        }
    }

    private static func ecdsa(curveOID: [UInt8]?, scalarLength: Int?, der: [UInt8]) throws -> SSHPrivateKey {
        let curve: ECDSACurve
        switch curveOID {
        case KeyOID.secp256r1?: curve = .p256
        case KeyOID.secp384r1?: curve = .p384
        case KeyOID.secp521r1?: curve = .p521
        case nil:
            // Without named parameters the scalar's width is the only hint to the curve.
            switch scalarLength {
            case 32?: curve = .p256
            case 48?: curve = .p384
            case 66?: curve = .p521
            default: throw SSHKeyError.unsupportedType("EC key without a named curve")
            }
        default:
            throw SSHKeyError.unsupportedType("EC curve other than P-256, P-384, P-521")
        }
        let backing: SSHPrivateKey.Backing
        do {
            switch curve.coordinateBytes {
            case 32: backing = .p256(try P256.Signing.PrivateKey(derRepresentation: der))
            case 48: backing = .p384(try P384.Signing.PrivateKey(derRepresentation: der))
            default: backing = .p521(try P521.Signing.PrivateKey(derRepresentation: der))
            }
        } catch {
            throw SSHKeyError.malformed("not a valid \(curve.identifier) private key")
        }
        return try SSHPrivateKey(backing: backing)
    }
}
