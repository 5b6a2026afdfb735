import BerthSSHWire

/// A key that cannot be read, written or used. `code` is a stable message code for logs and
/// tests; `message` names the exact problem so an operator can fix the file.
public struct SSHKeyError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: String
    public let message: String

    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// The same error as a protocol error, for a key that arrived in an SSH message.
    public var protocolError: SSHProtocolError { SSHProtocolError(code, message) }

    /// A key type Berth does not handle (DSA, security keys, certificates, …).
    static func unsupportedType(_ type: String) -> SSHKeyError {
        SSHKeyError("SSH_KEY_UNSUPPORTED_TYPE", "unsupported key type \"\(printable(type))\"")
    }

    static func malformed(_ what: String) -> SSHKeyError {
        SSHKeyError("SSH_KEY_MALFORMED", what)
    }

    static let encrypted = SSHKeyError("SSH_KEY_ENCRYPTED", "encrypted keys are not supported; decrypt with ssh-keygen -p")

    static func rsaTooSmall(bits: Int, minimum: Int, usage: String) -> SSHKeyError {
        SSHKeyError("SSH_KEY_RSA_TOO_SMALL", "RSA key has \(bits) bits; \(usage) needs at least \(minimum)")
    }

    static func rsaTooLarge(bits: Int) -> SSHKeyError {
        SSHKeyError("SSH_KEY_RSA_TOO_LARGE", "RSA key has \(bits) bits; at most \(RSAKeyLimits.maximumBits) are supported")
    }

    static func badAlgorithm(_ algorithm: String, keyType: String) -> SSHKeyError {
        SSHKeyError("SSH_KEY_BAD_ALGORITHM", "signature algorithm \"\(printable(algorithm))\" cannot be used with a \(keyType) key")
    }

    static func unsupportedFormat(_ what: String) -> SSHKeyError {
        SSHKeyError("SSH_KEY_UNSUPPORTED_FORMAT", what)
    }

    static func mismatch(_ what: String) -> SSHKeyError {
        SSHKeyError("SSH_KEY_MISMATCH", what)
    }

    /// Names from the wire are echoed in messages; keep them short and printable so a hostile
    /// peer cannot flood or garble logs.
    static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.prefix(64).map { $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
        return text.unicodeScalars.count > 64 ? cleaned + "…" : cleaned
    }
}

enum RSAKeyLimits {
    /// OpenSSH's SSH_RSA_MINIMUM_MODULUS_SIZE: smaller keys are refused outright.
    static let minimumBits = 1024
    /// Host keys and anything Berth signs with: swift-crypto's safe initialisers start here.
    static let minimumPrivateBits = 2048
    /// OpenSSH's OPENSSL_RSA_MAX_MODULUS_BITS; bounds the work a peer can make us do.
    static let maximumBits = 16384
}
