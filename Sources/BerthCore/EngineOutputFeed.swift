import NIOCore

/// The output of an engine connection (a Docker exec/attach stream, a Kubernetes exec
/// WebSocket) as an async sequence, with backpressure: once the consumer is 16 elements behind,
/// the owning handler's reads are held back (a `ReadGate`), so the engine's socket buffer fills
/// instead of memory here; reads go on when the consumer is down to 4.
///
/// One channel handler owns a feed and uses it on its event loop only: the handler decodes what
/// is engine-specific and forwards `handlerAdded(context:)` and `read(context:)` here.
public final class EngineOutputFeed<Element: Sendable> {
    typealias Producer = NIOThrowingAsyncSequenceProducer<
        Element, Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, Demand
    >

    private let source: Producer.Source
    private var context: ChannelHandlerContext?
    private var gate = ReadGate()
    /// Ended by the engine (`finish`) or by the consumer going away; nothing more is delivered.
    public private(set) var isFinished = false

    /// A feed and the sequence its consumer reads.
    public static func make(eventLoop: EventLoop) -> (EngineOutputFeed, EngineOutputSequence<Element>) {
        let demand = Demand(eventLoop: eventLoop)
        let result = Producer.makeSequence(
            elementType: Element.self, failureType: Error.self,
            backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16), finishOnDeinit: false, delegate: demand)
        let feed = EngineOutputFeed(source: result.source)
        demand.feed = feed
        return (feed, EngineOutputSequence(base: result.sequence))
    }

    private init(source: Producer.Source) { self.source = source }

    /// From the handler's `handlerAdded(context:)`: held-back reads and the close when the
    /// consumer goes away are issued through it.
    public func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// From the handler's `handlerRemoved(context:)`: the context holds the handler, which holds
    /// this feed, so keeping it would keep all three alive after the channel is gone.
    public func handlerRemoved() { context = nil }

    /// From the handler's `read(context:)`.
    public func read(context: ChannelHandlerContext) {
        if gate.shouldRead() { context.read() }
    }

    public func yield(_ element: Element) {
        yield(contentsOf: CollectionOfOne(element))
    }

    /// Dropped once finished.
    public func yield(contentsOf elements: some Sequence<Element>) {
        guard !isFinished else { return }
        if case .stopProducing = source.yield(contentsOf: elements) { gate.pause() }
    }

    /// The end of the output, with the engine's error if there is one; only the first call counts.
    public func finish(_ error: Error? = nil) {
        guard !isFinished else { return }
        isFinished = true
        if let error { source.finish(error) } else { source.finish() }
    }

    /// Ends the output with `error` and closes the connection.
    public func fail(_ error: Error) {
        finish(error)
        context?.close(promise: nil)
    }

    private func resume() {
        if gate.resume() { context?.read() }
    }

    /// Nobody reads the output any more: the connection is of no use.
    private func consumerGone() {
        isFinished = true
        context?.close(promise: nil)
    }

    /// The producer's delegate: takes the consumer's demand to the feed on its event loop.
    final class Demand: NIOAsyncSequenceProducerDelegate, @unchecked Sendable {
        private let eventLoop: EventLoop
        /// Set once, right after the feed is made, before the sequence is handed out.
        fileprivate var feed: EngineOutputFeed?

        init(eventLoop: EventLoop) { self.eventLoop = eventLoop }

        func produceMore() { eventLoop.execute { self.feed?.resume() } }
        func didTerminate() { eventLoop.execute { self.feed?.consumerGone() } }
    }
}

/// What an `EngineOutputFeed` delivers; ends when the engine ends the output.
public struct EngineOutputSequence<Element: Sendable>: AsyncSequence, Sendable {
    let base: EngineOutputFeed<Element>.Producer

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: EngineOutputFeed<Element>.Producer.AsyncIterator
        public mutating func next() async throws -> Element? { try await base.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator()) }
}
