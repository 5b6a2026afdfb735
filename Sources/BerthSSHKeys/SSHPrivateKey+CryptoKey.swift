import Crypto

extension SSHPrivateKey {
    /// The swift-crypto key behind an SSH key, for code that hands keys to another SSH library
    /// (the SSH proxy backend still runs on swift-nio-ssh, which has no RSA).
    public enum CryptoKey: Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case p521(P521.Signing.PrivateKey)
        case rsa
    }

    public var cryptoKey: CryptoKey {
        switch backing {
        case .ed25519(let key): return .ed25519(key)
        case .p256(let key): return .p256(key)
        case .p384(let key): return .p384(key)
        case .p521(let key): return .p521(key)
        case .rsa: return .rsa
        }
    }
}
