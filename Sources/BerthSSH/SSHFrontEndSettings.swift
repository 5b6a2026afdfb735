import BerthConfig
import BerthSSHEngine
import BerthSSHKeys

/// The `ssh` section as the front end uses it, with host keys already loaded.
public struct SSHFrontEndSettings: Sendable {
    public var host: String
    public var port: Int
    /// What the engine is configured with: version, algorithms, host keys, banner.
    public var engine: SSHServerSettings
    public var maxAuthTries: Int
    public var loginGraceTime: BerthDuration
    public var clientAliveInterval: BerthDuration
    public var clientAliveCountMax: Int
    public var idleTimeout: BerthDuration
    public var maxConnections: Int
    public var maxConnectionsPerIP: Int
    public var maxStartups: MaxStartups
    public var perSourceStartups: PerSourceStartups
    public var descriptorReserve: Int
    /// From the `auth` section; the front end applies it because it sees every attempt and
    /// can close a blocked address's connection before key exchange.
    public var loginProtection = LoginProtectionConfig()
    /// Offer keyboard-interactive as one password prompt (auth.keyboardInteractive.passwordPrompt
    /// with a password method configured).
    public var keyboardInteractivePassword = false
    /// Keyboard-interactive is the auth layer's own sign-in (auth.keyboardInteractive.method oauth2).
    public var keyboardInteractiveSignIn = false

    public init(config: SSHConfig, hostKeys: [SSHPrivateKey], hostCertificates: [CertifiedHostKey] = []) throws {
        let (host, port) = try Self.split(listen: config.listen)
        self.host = host
        self.port = port
        var engine = SSHServerSettings(hostKeys: hostKeys)
        engine.hostCertificates = hostCertificates
        engine.serverVersion = config.serverVersion
        engine.kex = config.kex
        engine.ciphers = config.ciphers
        engine.macs = config.macs
        engine.hostKeyAlgorithms = config.hostKeyAlgorithms
        engine.userAuthKeyAlgorithms = config.publicKeyAlgorithms
        engine.banner = config.banner.isEmpty ? nil : (config.banner.hasSuffix("\n") ? config.banner : config.banner + "\n")
        // Berth counts real credential failures itself (ssh.maxAuthTries); this only bounds
        // floods of requests that never reach it (none, keyboard-interactive, key queries).
        engine.maxAuthRequests = config.maxAuthTries * 4 + 16
        let usable = Set(hostKeys.flatMap(\.signatureAlgorithms))
        if !engine.hostKeyAlgorithms.contains(where: usable.contains) {
            let types = hostKeys.map(\.keyType).joined(separator: ", ")
            throw HostKeyConfigError(
                message:
                    "ssh.hostKeyAlgorithms: none of \(engine.hostKeyAlgorithms.joined(separator: ", ")) can sign with the host keys (\(types)); add a host key of a listed type or list one of \(usable.sorted().joined(separator: ", "))"
            )
        }
        self.engine = engine
        self.maxAuthTries = config.maxAuthTries
        self.loginGraceTime = config.loginGraceTime
        self.clientAliveInterval = config.clientAliveInterval
        self.clientAliveCountMax = config.clientAliveCountMax
        self.idleTimeout = config.idleTimeout
        self.maxConnections = config.maxConnections
        self.maxConnectionsPerIP = config.maxConnectionsPerIP
        self.maxStartups = config.maxStartups
        self.perSourceStartups = config.perSourceStartups
        self.descriptorReserve = config.descriptorReserve
    }

    /// `host:port` or `[v6]:port`.
    static func split(listen: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw HostKeyConfigError(message: "ssh.listen: \"\(listen)\" is not host:port")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }
}
