import BerthCore
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import Testing

/// Hands each inbound buffer to a feed, the way the Docker and Kubernetes stream handlers do.
private final class FeedingHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    private let feed: EngineOutputFeed<ByteBuffer>

    init(feed: EngineOutputFeed<ByteBuffer>) { self.feed = feed }

    func handlerAdded(context: ChannelHandlerContext) { feed.handlerAdded(context: context) }
    func handlerRemoved(context: ChannelHandlerContext) { feed.handlerRemoved() }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) { feed.yield(unwrapInboundIn(data)) }
    func read(context: ChannelHandlerContext) { feed.read(context: context) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { feed.fail(error) }

    func channelInactive(context: ChannelHandlerContext) {
        feed.finish()
        context.fireChannelInactive()
    }
}

/// Sits between the feed's handler and the socket: counts the reads the feed lets through.
private final class ReadCounter: ChannelOutboundHandler, Sendable {
    typealias OutboundIn = ByteBuffer
    let reads = NIOLockedValueBox(0)

    func read(context: ChannelHandlerContext) {
        reads.withLockedValue { $0 += 1 }
        context.read()
    }
}

private struct Boom: Error {}

private final class WeakFeed: @unchecked Sendable {
    weak var feed: EngineOutputFeed<ByteBuffer>?
}

/// The async variant of EmbeddedChannel: the consumer runs on the test's task, and the feed's
/// demand comes back to the channel's loop from there.
private struct FeedFixture {
    let channel = NIOAsyncTestingChannel()
    let counter = ReadCounter()

    func start() async throws -> EngineOutputSequence<ByteBuffer> {
        let channel = channel
        let counter = counter
        let output = try await channel.testingEventLoop.executeInContext {
            let (feed, output) = EngineOutputFeed<ByteBuffer>.make(eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandlers(counter, FeedingHandler(feed: feed))
            return output
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 22))
        return output
    }

    func send(_ values: Range<UInt8>) async throws {
        for value in values { try await channel.writeInbound(ByteBuffer(integer: value)) }
    }

    /// Asks for a read; true when it got past the feed to the socket.
    func readGoesThrough() async throws -> Bool {
        let before = counter.reads.withLockedValue { $0 }
        let channel = channel
        try await channel.testingEventLoop.executeInContext { channel.read() }
        return counter.reads.withLockedValue { $0 } > before
    }

    /// Lets the demand the consumer sent to the loop take effect.
    func settle() async { await channel.testingEventLoop.run() }
}

@Suite struct EngineOutputFeedTests {
    @Test func readsPauseAtSixteenBufferedAndResumeBelowFour() async throws {
        let fixture = FeedFixture()
        let output = try await fixture.start()
        try await fixture.send(0..<15)
        #expect(try await fixture.readGoesThrough())
        try await fixture.send(15..<16)
        #expect(try await !fixture.readGoesThrough())
        let held = fixture.counter.reads.withLockedValue { $0 }

        var iterator = output.makeAsyncIterator()
        for expected in UInt8(0)..<12 {
            #expect(try await iterator.next()?.getInteger(at: 0, as: UInt8.self) == expected)
        }
        await fixture.settle()
        #expect(fixture.counter.reads.withLockedValue { $0 } == held, "four still buffered: the read stays held back")

        #expect(try await iterator.next()?.getInteger(at: 0, as: UInt8.self) == 12)
        await fixture.settle()
        #expect(fixture.counter.reads.withLockedValue { $0 } == held + 1, "three buffered: the held-back read goes out")
        #expect(try await fixture.readGoesThrough())
    }

    @Test func endOfInputFinishesOnceAndALaterErrorIsIgnored() async throws {
        let fixture = FeedFixture()
        let output = try await fixture.start()
        try await fixture.send(0..<2)
        fixture.channel.pipeline.fireChannelInactive()
        try await fixture.send(2..<3)
        fixture.channel.pipeline.fireErrorCaught(Boom())

        var received: [UInt8] = []
        for try await buffer in output { received.append(buffer.getInteger(at: 0, as: UInt8.self)!) }
        #expect(received == [0, 1])
    }

    @Test func errorFinishesOnceWithItAndClosesTheConnection() async throws {
        let fixture = FeedFixture()
        let output = try await fixture.start()
        try await fixture.send(0..<1)
        fixture.channel.pipeline.fireErrorCaught(Boom())
        fixture.channel.pipeline.fireChannelInactive()

        var iterator = output.makeAsyncIterator()
        #expect(try await iterator.next()?.getInteger(at: 0, as: UInt8.self) == 0)
        await #expect(throws: Boom.self) { _ = try await iterator.next() }
        await fixture.settle()
        #expect(!fixture.channel.isActive)
    }

    /// The feed holds its handler's context, which holds the handler, which holds the feed: the
    /// handler's removal must break that, or every engine stream would stay in memory for good.
    @Test func theFeedGoesWithItsChannel() async throws {
        let channel = NIOAsyncTestingChannel()
        let weak = WeakFeed()
        do {
            let output = try await channel.testingEventLoop.executeInContext {
                let (feed, output) = EngineOutputFeed<ByteBuffer>.make(eventLoop: channel.eventLoop)
                weak.feed = feed
                try channel.pipeline.syncOperations.addHandler(FeedingHandler(feed: feed))
                return output
            }
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 22))
            try await channel.writeInbound(ByteBuffer(integer: UInt8(1)))
            var iterator = output.makeAsyncIterator()
            #expect(try await iterator.next() != nil)
            try await channel.close()
            #expect(try await iterator.next() == nil)
        }
        await channel.testingEventLoop.run()
        #expect(weak.feed == nil)
    }

    @Test func consumerGoingAwayClosesTheConnection() async throws {
        let fixture = FeedFixture()
        do {
            let output = try await fixture.start()
            try await fixture.send(0..<1)
            _ = output
        }
        await fixture.settle()
        #expect(!fixture.channel.isActive)
    }
}
