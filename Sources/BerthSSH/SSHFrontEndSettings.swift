import BerthConfig
import NIOSSH

/// The `ssh` section as the front end uses it, with host keys already loaded.
public struct SSHFrontEndSettings: Sendable {
    public var host: String
    public var port: Int
    public var hostKeys: [NIOSSHPrivateKey]
    public var banner: String
    public var maxAuthTries: Int
    public var loginGraceTime: BerthDuration
    public var clientAliveInterval: BerthDuration
    public var clientAliveCountMax: Int
    public var idleTimeout: BerthDuration
    public var maxConnections: Int
    public var maxConnectionsPerIP: Int
    public var maxStartups: MaxStartups

    public init(config: SSHConfig, hostKeys: [NIOSSHPrivateKey]) throws {
        let (host, port) = try Self.split(listen: config.listen)
        self.host = host
        self.port = port
        self.hostKeys = hostKeys
        self.banner = config.banner
        self.maxAuthTries = config.maxAuthTries
        self.loginGraceTime = config.loginGraceTime
        self.clientAliveInterval = config.clientAliveInterval
        self.clientAliveCountMax = config.clientAliveCountMax
        self.idleTimeout = config.idleTimeout
        self.maxConnections = config.maxConnections
        self.maxConnectionsPerIP = config.maxConnectionsPerIP
        self.maxStartups = config.maxStartups
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
