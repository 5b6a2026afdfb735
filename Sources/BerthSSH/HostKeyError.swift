import BerthCore

/// Why a host key could not be used. Always a startup error.
enum HostKeyError: Error, CustomStringConvertible {
    case malformed(String)
    case unsupportedType(String)
    case rsa
    case encrypted
    case unreadable(path: String, reason: String)

    var description: String {
        switch self {
        case .malformed(let why): return "malformed private key: \(why)"
        case .unsupportedType(let type): return "unsupported host key type \(type); use ed25519 or ECDSA (make one with `berth keygen`)"
        case .rsa:
            return "RSA host keys are not supported (the SSH library has no RSA); make an ed25519 key with `berth keygen --output FILE` and list it in ssh.hostkeys"
        case .encrypted: return "encrypted private keys are not supported; store the host key without a passphrase (mode 0600)"
        case .unreadable(let path, let reason): return "cannot read host key file \(path): \(reason)"
        }
    }
}

/// Host key problems reported with the key's position in `ssh.hostkeys`.
public struct HostKeyConfigError: CodedError {
    public let code: MessageCode = "SSH_HOST_KEY_INVALID"
    public let message: String
}
