import BerthCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 server for Berth's own endpoints (metrics, health); no framework needed.
public final class PlainHTTPServer: Sendable {
    public struct Response: Sendable {
        public var status: HTTPResponseStatus
        public var contentType: String
        public var body: [UInt8]
        /// Further headers, such as a redirect's Location.
        public var headers: [(name: String, value: String)]

        public init(status: HTTPResponseStatus, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headers: [(name: String, value: String)] = []) {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.headers = headers
        }
    }

    /// `query` is the raw text after `?` (empty without one).
    public typealias Route = @Sendable (_ method: HTTPMethod, _ path: String, _ query: String) -> Response

    private let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    /// A scraper or probe needs one or two connections; the cap and the idle timeout keep
    /// anyone who can reach the port from holding descriptors Berth needs for SSH.
    public static let defaultMaxConnections = 32
    public static let defaultIdleTimeout = TimeAmount.seconds(30)

    /// Binds `listen` (`host:port`) and serves `route`. Connections past `maxConnections` are
    /// closed at once; one with no traffic for `idleTimeout` is closed.
    public static func start(
        listen: String, what: String, maxConnections: Int = defaultMaxConnections,
        idleTimeout: TimeAmount = defaultIdleTimeout, route: @escaping Route
    ) async throws -> PlainHTTPServer {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw BerthError("HTTP_SERVER_LISTEN_FAILED", "\(what): \"\(listen)\" is not host:port")
        }
        let host = String(listen[..<colon]).trimmingCharacters(in: ["[", "]"])
        let open = NIOLockedValueBox(0)
        do {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    let admitted = open.withLockedValue { count in
                        guard count < maxConnections else { return false }
                        count += 1
                        return true
                    }
                    guard admitted else {
                        channel.close(promise: nil)
                        return channel.eventLoop.makeSucceededVoidFuture()
                    }
                    channel.closeFuture.whenComplete { _ in open.withLockedValue { $0 -= 1 } }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                        try channel.pipeline.syncOperations.addHandler(IdleCloser())
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(PlainHTTPHandler(route: route))
                    }
                }
                .bind(host: host.isEmpty ? "0.0.0.0" : host, port: port).get()
            return PlainHTTPServer(channel: channel)
        } catch {
            throw BerthError("HTTP_SERVER_LISTEN_FAILED", "\(what): cannot listen on \(listen): \(error)")
        }
    }

    public var port: Int? { channel.localAddress?.port }

    public func stop() async { try? await channel.close() }
}

private final class PlainHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let route: PlainHTTPServer.Route
    private var head: HTTPRequestHead?

    init(route: @escaping PlainHTTPServer.Route) { self.route = route }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let request): head = request
        case .body: break
        case .end:
            guard let head else { return }
            let parts = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
            let response = route(head.method, String(parts.first ?? "/"), parts.count > 1 ? String(parts[1]) : "")
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: response.contentType)
            headers.add(name: "Content-Length", value: String(response.body.count))
            for (name, value) in response.headers { headers.add(name: name, value: value) }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: response.status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: response.body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            self.head = nil
        }
    }
}

/// Closes a connection when `IdleStateHandler` reports that nothing moved for its timeout.
private final class IdleCloser: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
