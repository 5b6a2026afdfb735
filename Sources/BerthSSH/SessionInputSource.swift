import BerthCore
import NIOConcurrencyHelpers
import NIOCore

/// Feeds client bytes into a `SessionInput` with backpressure: when the consumer falls behind,
/// reads from the SSH channel stop, so the client's window stays closed instead of memory growing.
final class SessionInputSource: NIOAsyncSequenceProducerDelegate {
    typealias Producer = NIOAsyncSequenceProducer<ByteBuffer, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, SessionInputSource>

    private let eventLoop: EventLoop
    private let onDemand: @Sendable () -> Void
    private let box = NIOLockedValueBox<Producer.Source?>(nil)

    init(eventLoop: EventLoop, onDemand: @escaping @Sendable () -> Void) {
        self.eventLoop = eventLoop
        self.onDemand = onDemand
    }

    /// Makes the sequence; must be called once.
    func makeInput() -> SessionInput {
        let result = Producer.makeSequence(
            elementType: ByteBuffer.self,
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8),
            finishOnDeinit: false,
            delegate: self
        )
        box.withLockedValue { $0 = result.source }
        let iterator = IteratorBox(result.sequence.makeAsyncIterator())
        return SessionInput { await iterator.next() }
    }

    /// Returns false when the consumer wants no more for now.
    func yield(_ buffer: ByteBuffer) -> Bool {
        guard let source = box.withLockedValue({ $0 }) else { return false }
        switch source.yield(buffer) {
        case .produceMore: return true
        case .stopProducing, .dropped: return false
        }
    }

    func finish() {
        box.withLockedValue { $0 }?.finish()
    }

    func produceMore() { eventLoop.execute(onDemand) }
    func didTerminate() {}
}

extension SessionInputSource: @unchecked Sendable {}

/// A session's stdin has exactly one reader (the backend), so the iterator is never shared.
private final class IteratorBox: @unchecked Sendable {
    private var iterator: SessionInputSource.Producer.AsyncIterator

    init(_ iterator: SessionInputSource.Producer.AsyncIterator) { self.iterator = iterator }

    func next() async -> ByteBuffer? { await iterator.next() }
}
