import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import BerthObservability

/// The metrics and health listeners cap their connections and close idle ones, so whoever can
/// reach the port cannot hold descriptors Berth needs for SSH.
@Suite struct PlainHTTPServerLimitTests {
    /// A raw TCP client: sends a request and hands back what the server answered.
    final class Client: Sendable {
        let channel: Channel
        private let received: NIOLockedValueBox<EventLoopPromise<String>?>

        private init(channel: Channel, received: NIOLockedValueBox<EventLoopPromise<String>?>) {
            self.channel = channel
            self.received = received
        }

        static func connect(port: Int) async throws -> Client {
            let box = NIOLockedValueBox<EventLoopPromise<String>?>(nil)
            let handler = ReadForwarder(box: box)
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { $0.pipeline.addHandler(handler) }
                .connect(host: "127.0.0.1", port: port).get()
            return Client(channel: channel, received: box)
        }

        /// The answer's first bytes, or nil when the server closed the connection instead.
        func get() async throws -> String? {
            let promise = channel.eventLoop.makePromise(of: String.self)
            received.withLockedValue { $0 = promise }
            channel.closeFuture.whenComplete { _ in promise.fail(ChannelError.ioOnClosedChannel) }
            try? await channel.writeAndFlush(ByteBuffer(string: "GET /x HTTP/1.1\r\nHost: test\r\n\r\n")).get()
            return try? await promise.futureResult.get()
        }
    }

    final class ReadForwarder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let box: NIOLockedValueBox<EventLoopPromise<String>?>
        init(box: NIOLockedValueBox<EventLoopPromise<String>?>) { self.box = box }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let text = String(buffer: unwrapInboundIn(data))
            box.withLockedValue { promise in
                promise?.succeed(text)
                promise = nil
            }
        }
    }

    private func server(maxConnections: Int = 32, idleTimeout: TimeAmount = .seconds(60)) async throws -> PlainHTTPServer {
        try await PlainHTTPServer.start(listen: "127.0.0.1:0", what: "test", maxConnections: maxConnections, idleTimeout: idleTimeout) { _, _, _ in
            .init(status: .ok, body: Array("ok".utf8))
        }
    }

    @Test func connectionsPastTheCapAreClosed() async throws {
        let server = try await server(maxConnections: 2)
        let first = try await Client.connect(port: server.port!)
        let second = try await Client.connect(port: server.port!)
        #expect(try await first.get()?.hasPrefix("HTTP/1.1 200") == true)
        #expect(try await second.get()?.hasPrefix("HTTP/1.1 200") == true)
        let third = try await Client.connect(port: server.port!)
        #expect(try await third.get() == nil)
        // A freed place is given to the next client (once the server has seen the close).
        try await first.channel.close()
        var answered = false
        while !answered {
            let next = try await Client.connect(port: server.port!)
            answered = try await next.get() != nil
            try? await next.channel.close()
        }
        try? await second.channel.close()
        await server.stop()
    }

    @Test func idleConnectionsAreClosed() async throws {
        let server = try await server(idleTimeout: .milliseconds(100))
        // A client that connects and never sends: the server ends the connection. (No request
        // first: on a loaded machine the idle time could pass before it is written.)
        let client = try await Client.connect(port: server.port!)
        try await client.channel.closeFuture.get()
        await server.stop()
    }
}
