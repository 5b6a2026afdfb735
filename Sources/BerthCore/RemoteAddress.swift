/// The client's address as webhooks and logs show it: `IP:port`, IPv6 as `[addr]:port`.
public struct RemoteAddress: Sendable, Hashable, CustomStringConvertible {
    public let ip: String
    public let port: Int

    public init(ip: String, port: Int) {
        self.ip = ip
        self.port = port
    }

    public var description: String {
        ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
