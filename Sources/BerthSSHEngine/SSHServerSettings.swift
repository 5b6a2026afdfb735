import BerthSSHCipher
import BerthSSHKex
import BerthSSHKeys
import NIOCore

/// Everything the server role of the engine is configured with. The algorithm lists go into
/// KEXINIT exactly as given (in order), so they should be taken from the `supported` lists of
/// the lower modules; host key algorithms are further limited to what `hostKeys` can sign with.
public struct SSHServerSettings: Sendable {
    public var hostKeys: [SSHPrivateKey]
    /// Host keys presented with a certificate, offered next to `hostKeys`.
    public var hostCertificates: [CertifiedHostKey] = []
    /// Identification line without CR LF (RFC 4253 §4.2).
    public var serverVersion: String = "SSH-2.0-Berth"
    public var kex: [String] = SSHKexAlgorithms.defaults
    public var ciphers: [String] = SSHCipherSuite.defaultCiphers
    public var macs: [String] = SSHCipherSuite.defaultMACs
    public var hostKeyAlgorithms: [String] = SSHServerSettings.defaultHostKeyAlgorithms
    /// Public key signature algorithms accepted for user authentication, announced to the client
    /// in EXT_INFO `server-sig-algs` (RFC 8308). "ssh-rsa" (SHA-1) only if listed here.
    public var userAuthKeyAlgorithms: [String] = SSHServerSettings.defaultUserAuthKeyAlgorithms
    /// USERAUTH_BANNER sent once, before the first reply to an authentication request.
    public var banner: String?
    /// Protocol flood bound: the connection is dropped (reason 14) when the client sends more
    /// authentication requests than this. Berth counts failed attempts itself.
    public var maxAuthRequests: Int = 32
    /// Server-initiated rekey after this many payload bytes (both directions) since the last key exchange.
    public var rekeyBytes: UInt64 = 1 << 30
    /// Server-initiated rekey after this much time since the last key exchange.
    public var rekeyInterval: TimeAmount = .hours(1)
    public var maxChannels: Int = 64
    /// Unanswered want-reply requests per channel (and global requests per connection) before the
    /// connection is dropped as a flood.
    public var maxPendingRequests: Int = 64
    /// Window advertised to the client for every channel; adjusted when half of it was consumed.
    public var windowSize: UInt32 = 2 << 20
    /// Largest data payload the client may send in one CHANNEL_DATA.
    public var maxPacketSize: UInt32 = 32768
    /// Bytes queued on one channel above which `SSHChannel.isWritable` turns false.
    public var channelHighWaterMark: Int = 256 * 1024

    /// Certificate algorithms first, as OpenSSH orders them; they are only offered with a
    /// host certificate (`hostCertificates`).
    public static let defaultHostKeyAlgorithms: [String] = [
        "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
        "ssh-ed25519",
        "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "rsa-sha2-512", "rsa-sha2-256",
    ]

    public static let defaultUserAuthKeyAlgorithms: [String] = [
        "ssh-ed25519",
        "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "rsa-sha2-512", "rsa-sha2-256",
        "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
    ]

    public init(hostKeys: [SSHPrivateKey]) {
        self.hostKeys = hostKeys
    }
}
