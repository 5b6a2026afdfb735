import Crypto
import NIOSSH

/// A freshly generated key, kept with its concrete type so it can be written to disk.
public enum GeneratedHostKey {
    case ed25519(Curve25519.Signing.PrivateKey)
    case p256(P256.Signing.PrivateKey)
    case p384(P384.Signing.PrivateKey)
    case p521(P521.Signing.PrivateKey)

    public enum Kind: String, CaseIterable, Sendable {
        case ed25519
        case ecdsaP256 = "ecdsa-p256"
        case ecdsaP384 = "ecdsa-p384"
        case ecdsaP521 = "ecdsa-p521"
    }

    public static func generate(_ kind: Kind) -> GeneratedHostKey {
        switch kind {
        case .ed25519: return .ed25519(.init())
        case .ecdsaP256: return .p256(.init())
        case .ecdsaP384: return .p384(.init())
        case .ecdsaP521: return .p521(.init())
        }
    }

    var typeName: String {
        switch self {
        case .ed25519: return "ssh-ed25519"
        case .p256: return "ecdsa-sha2-nistp256"
        case .p384: return "ecdsa-sha2-nistp384"
        case .p521: return "ecdsa-sha2-nistp521"
        }
    }

    public var sshKey: NIOSSHPrivateKey {
        switch self {
        case .ed25519(let key): return NIOSSHPrivateKey(ed25519Key: key)
        case .p256(let key): return NIOSSHPrivateKey(p256Key: key)
        case .p384(let key): return NIOSSHPrivateKey(p384Key: key)
        case .p521(let key): return NIOSSHPrivateKey(p521Key: key)
        }
    }

    /// The private key in OpenSSH format, as `ssh-keygen` writes it.
    public func openSSHPrivateKey(comment: String) -> String {
        OpenSSHPrivateKeyFormat.serialize(self, comment: comment)
    }

    /// The authorized_keys line of the public half.
    public var publicKeyLine: String { String(openSSHPublicKey: sshKey.publicKey) }
}
