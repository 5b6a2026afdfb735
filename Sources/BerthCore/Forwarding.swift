import NIOCore

// Port forwarding between the layers (docs/agent-protocol.md, "Forwarding"): the SSH front end turns `direct-tcpip` channels
// and `tcpip-forward` requests into these calls; backends that can forward implement them.

/// Where a client's `direct-tcpip` channel wants to go, and where it comes from.
public struct DirectForward: Sendable, Hashable {
    public var host: String
    public var port: UInt32
    public var originatorHost: String
    public var originatorPort: UInt32

    public init(host: String, port: UInt32, originatorHost: String, originatorPort: UInt32) {
        self.host = host
        self.port = port
        self.originatorHost = originatorHost
        self.originatorPort = originatorPort
    }
}

/// A `tcpip-forward` request: listen on `host:port` in the user's environment.
public struct ReverseForward: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt32

    public init(host: String, port: UInt32) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// One forwarded connection as an SSH channel: the client's bytes in, bytes to the client out.
public protocol ForwardChannel: Sendable {
    /// Per-connection channel number, shared with session channels.
    var channelID: UInt64 { get }
    /// What the client sends; ends at the client's EOF or when the channel closes.
    var input: SessionInput { get }
    /// Suspends while the client's window is full.
    func write(_ data: ByteBuffer) async throws
    /// EOF towards the client.
    func closeWrite() async
    func close() async
    /// Returns once the channel is closed, by either side.
    func waitClosed() async
}

/// Opens `forwarded-tcpip` channels to the client for connections accepted by a reverse forward.
public protocol ForwardedChannelOpener: Sendable {
    /// `forward` carries the bound port, as the client asked for it or as allocated.
    func openForwardedChannel(_ forward: ReverseForward, originatorHost: String, originatorPort: UInt32) async throws -> any ForwardChannel
}

extension SSHConnectionHandler {
    public func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        throw ChannelRejection(.administrativelyProhibited, "port forwarding is not available")
    }

    public func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        throw RequestRefused("FORWARD_NOT_AVAILABLE", "port forwarding is not available")
    }

    public func onCancelReverseForward(_ forward: ReverseForward) async throws {
        throw RequestRefused("FORWARD_NOT_AVAILABLE", "port forwarding is not available")
    }
}
