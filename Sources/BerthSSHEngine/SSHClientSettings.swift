import BerthSSHCipher
import BerthSSHKex
import BerthSSHKeys
import NIOCore

/// Everything the client role of the engine is configured with (the SSH proxy's upstream
/// connection). Algorithm lists go into KEXINIT as given, in order.
public struct SSHClientSettings: Sendable {
    /// Identification line without CR LF (RFC 4253 §4.2).
    public var clientVersion: String = "SSH-2.0-Berth"
    public var username: String
    /// Offered after the key, if the server allows "password".
    public var password: String?
    /// Offered first, if the server allows "publickey"; RSA keys sign with rsa-sha2-512/256.
    public var privateKey: SSHPrivateKey?
    public var kex: [String] = SSHKexAlgorithms.defaults
    public var ciphers: [String] = SSHCipherSuite.defaultCiphers
    public var macs: [String] = SSHCipherSuite.defaultMACs
    /// Host key algorithms accepted from the server. No certificate algorithms: the server's key
    /// is trusted by its fingerprint, not by a CA.
    public var hostKeyAlgorithms: [String] = SSHClientSettings.defaultHostKeyAlgorithms
    public var rekeyBytes: UInt64 = 1 << 30
    public var rekeyInterval: TimeAmount = .hours(1)
    public var maxChannels: Int = 256
    public var maxPendingRequests: Int = 64
    public var windowSize: UInt32 = 2 << 20
    public var maxPacketSize: UInt32 = 32768
    public var channelHighWaterMark: Int = 256 * 1024

    public static let defaultHostKeyAlgorithms: [String] = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "rsa-sha2-512", "rsa-sha2-256",
    ]

    public init(username: String) {
        self.username = username
    }

    /// The limits the connection protocol shares with the server role.
    var connectionSettings: SSHServerSettings {
        var settings = SSHServerSettings(hostKeys: [])
        settings.rekeyBytes = rekeyBytes
        settings.rekeyInterval = rekeyInterval
        settings.maxChannels = maxChannels
        settings.maxPendingRequests = maxPendingRequests
        settings.windowSize = windowSize
        settings.maxPacketSize = maxPacketSize
        settings.channelHighWaterMark = channelHighWaterMark
        return settings
    }
}

public protocol SSHClientDelegate: SSHConnectionDelegate {
    func sshServerVersion(_ version: String)
    /// The server's host key, whose signature over the exchange hash verified with `algorithm`.
    /// Throw to refuse it; the connection then ends with that error. Asked at every key exchange.
    func sshVerifyHostKey(_ key: SSHPublicKey, algorithm: String) throws
    /// USERAUTH_SUCCESS: channels and global requests may be sent now.
    func sshAuthenticated()
}
