import BerthSSHWire
import Crypto
import _CryptoExtras
import Foundation
import NIOCore

/// A host (or client) private key: ed25519, ECDSA P-256/384/521, RSA (at least 2048 bits).
public struct SSHPrivateKey: SSHHostKeySigner {
    public private(set) var keyType: String
    public private(set) var publicKey: SSHPublicKey
    public private(set) var kind: SSHKeyKind
    /// The comment of an OpenSSH key file; empty for PEM files and generated keys.
    public var comment: String
    let backing: Backing

    enum Backing: Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case p521(P521.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey, RSAComponents)
    }

    /// The numbers OpenSSH's format stores; swift-crypto only exports them as PKCS#1 DER, so
    /// they are taken out once when the key is loaded.
    struct RSAComponents: Sendable {
        var n, e, d, p, q, iqmp: [UInt8]
    }

    init(backing: Backing, comment: String = "") throws {
        var blob = ByteBuffer()
        let kind: SSHKeyKind
        switch backing {
        case .ed25519(let key):
            kind = .ed25519
            blob.writeSSHText("ssh-ed25519")
            blob.writeSSHString(key.publicKey.rawRepresentation)
        case .p256(let key):
            kind = .ecdsaP256
            Self.writeECDSABlob(.p256, point: key.publicKey.x963Representation, into: &blob)
        case .p384(let key):
            kind = .ecdsaP384
            Self.writeECDSABlob(.p384, point: key.publicKey.x963Representation, into: &blob)
        case .p521(let key):
            kind = .ecdsaP521
            Self.writeECDSABlob(.p521, point: key.publicKey.x963Representation, into: &blob)
        case .rsa(let key, let components):
            kind = .rsa(bits: key.keySizeInBits)
            blob.writeSSHText("ssh-rsa")
            blob.writeSSHMPInt(unsignedBigEndian: components.e)
            blob.writeSSHMPInt(unsignedBigEndian: components.n)
        }
        self.publicKey = try SSHPublicKey(blob: Array(blob.readableBytesView))
        self.keyType = publicKey.keyType
        self.kind = kind
        self.comment = comment
        self.backing = backing
    }

    private static func writeECDSABlob(_ curve: ECDSACurve, point: Data, into blob: inout ByteBuffer) {
        blob.writeSSHText(curve.keyType)
        blob.writeSSHText(curve.identifier)
        blob.writeSSHString(point)
    }

    // MARK: SSHHostKeySigner

    public var publicKeyBlob: [UInt8] { publicKey.blob }

    /// `["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]` for RSA, the key type for the others.
    public var signatureAlgorithms: [String] { publicKey.signatureAlgorithms }

    /// A signature blob over `data`; throws SSH_KEY_BAD_ALGORITHM for an algorithm this key
    /// cannot sign with.
    public func sign(_ data: [UInt8], algorithm: String) throws -> [UInt8] {
        guard signatureAlgorithms.contains(algorithm) else { throw SSHKeyError.badAlgorithm(algorithm, keyType: keyType) }
        let signature: [UInt8]
        do {
            switch backing {
            case .ed25519(let key):
                signature = Array(try key.signature(for: data))
            case .p256(let key):
                signature = ECDSACurve.p256.signatureBody(raw: Array(try key.signature(for: data).rawRepresentation))
            case .p384(let key):
                signature = ECDSACurve.p384.signatureBody(raw: Array(try key.signature(for: data).rawRepresentation))
            case .p521(let key):
                signature = ECDSACurve.p521.signatureBody(raw: Array(try key.signature(for: data).rawRepresentation))
            case .rsa(let key, _):
                let rsa: _RSA.Signing.RSASignature
                switch RSASignatureAlgorithm(rawValue: algorithm)! {
                case .sha512: rsa = try key.signature(for: SHA512.hash(data: data), padding: .insecurePKCS1v1_5)
                case .sha256: rsa = try key.signature(for: SHA256.hash(data: data), padding: .insecurePKCS1v1_5)
                case .sha1: rsa = try key.signature(for: Insecure.SHA1.hash(data: data), padding: .insecurePKCS1v1_5)
                }
                signature = Array(rsa.rawRepresentation)
            }
        } catch {
            throw SSHKeyError("SSH_KEY_SIGN_FAILED", "\(algorithm) signing failed: \(error)")
        }
        var blob = ByteBuffer()
        blob.writeSSHText(algorithm)
        blob.writeSSHString(signature)
        return Array(blob.readableBytesView)
    }

    // MARK: generation

    /// A new random key. RSA sizes must be 2048…16384 bits in steps of 128 (BoringSSL rounds
    /// other sizes down, which would silently give a different key size).
    public static func generate(_ kind: SSHKeyKind) throws -> SSHPrivateKey {
        switch kind {
        case .ed25519: return try SSHPrivateKey(backing: .ed25519(.init()))
        case .ecdsaP256: return try SSHPrivateKey(backing: .p256(.init()))
        case .ecdsaP384: return try SSHPrivateKey(backing: .p384(.init()))
        case .ecdsaP521: return try SSHPrivateKey(backing: .p521(.init()))
        case .rsa(let bits):
            guard bits >= RSAKeyLimits.minimumPrivateBits else {
                throw SSHKeyError.rsaTooSmall(bits: bits, minimum: RSAKeyLimits.minimumPrivateBits, usage: "a generated key")
            }
            guard bits <= RSAKeyLimits.maximumBits else { throw SSHKeyError.rsaTooLarge(bits: bits) }
            guard bits % 128 == 0 else {
                throw SSHKeyError("SSH_KEY_BAD_SIZE", "RSA key size \(bits) is not a multiple of 128 bits")
            }
            let key: _RSA.Signing.PrivateKey
            do {
                key = try _RSA.Signing.PrivateKey(keySize: .init(bitCount: bits))
            } catch {
                throw SSHKeyError("SSH_KEY_GENERATION_FAILED", "RSA key generation failed: \(error)")
            }
            return try rsaKey(key)
        }
    }

    // MARK: reading

    /// Reads an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`, unencrypted) or a PEM
    /// key: `RSA PRIVATE KEY` (PKCS#1), `PRIVATE KEY` (PKCS#8: RSA, EC, Ed25519), `EC PRIVATE KEY`
    /// (SEC1). Throws SSHKeyError: SSH_KEY_ENCRYPTED, SSH_KEY_UNSUPPORTED_TYPE,
    /// SSH_KEY_UNSUPPORTED_FORMAT, SSH_KEY_MALFORMED, SSH_KEY_MISMATCH, SSH_KEY_RSA_TOO_SMALL.
    public init(text: String) throws {
        let armour = try PEMArmour(text: text)
        switch armour.label {
        case "OPENSSH PRIVATE KEY":
            self = try OpenSSHKeyFile.parse(armour.body)
        case "RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY":
            if armour.headers.contains(where: { $0.hasPrefix("Proc-Type:") && $0.contains("ENCRYPTED") }) {
                throw SSHKeyError.encrypted
            }
            self = try PEMKeyFile.parse(label: armour.label, der: armour.body)
        case "ENCRYPTED PRIVATE KEY":
            throw SSHKeyError.encrypted
        case "DSA PRIVATE KEY":
            throw SSHKeyError.unsupportedType("ssh-dss")
        case "PUBLIC KEY", "RSA PUBLIC KEY", "SSH2 PUBLIC KEY", "OPENSSH PUBLIC KEY":
            throw SSHKeyError.unsupportedFormat("this is a public key (\(armour.label)); give the private key")
        default:
            throw SSHKeyError.unsupportedFormat("unsupported PEM type \"\(SSHKeyError.printable(armour.label))\"")
        }
    }

    static func rsaKey(_ key: _RSA.Signing.PrivateKey, comment: String = "") throws -> SSHPrivateKey {
        let bits = key.keySizeInBits
        guard bits >= RSAKeyLimits.minimumPrivateBits else {
            throw SSHKeyError.rsaTooSmall(bits: bits, minimum: RSAKeyLimits.minimumPrivateBits, usage: "a host or private key")
        }
        guard bits <= RSAKeyLimits.maximumBits else { throw SSHKeyError.rsaTooLarge(bits: bits) }
        // PKCS#1 RSAPrivateKey: version, n, e, d, p, q, dP, dQ, qInv.
        var outer = DERReader(Array(key.derRepresentation))
        var sequence = try outer.readSequence("RSAPrivateKey")
        _ = try sequence.readUnsignedInteger("version")
        let n = try sequence.readUnsignedInteger("n")
        let e = try sequence.readUnsignedInteger("e")
        let d = try sequence.readUnsignedInteger("d")
        let p = try sequence.readUnsignedInteger("p")
        let q = try sequence.readUnsignedInteger("q")
        _ = try sequence.readUnsignedInteger("dP")
        _ = try sequence.readUnsignedInteger("dQ")
        let iqmp = try sequence.readUnsignedInteger("qInv")
        return try SSHPrivateKey(backing: .rsa(key, RSAComponents(n: n, e: e, d: d, p: p, q: q, iqmp: iqmp)), comment: comment)
    }

    // MARK: writing

    /// The key in OpenSSH's `openssh-key-v1` format, unencrypted, as `ssh-keygen` writes it
    /// (random check integers, padding 1, 2, 3, …, base64 in lines of 70).
    public func openSSHText(comment: String) -> String {
        OpenSSHKeyFile.serialize(self, comment: comment)
    }
}
