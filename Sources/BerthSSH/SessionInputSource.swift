import BerthCore
import NIOConcurrencyHelpers
import NIOCore

/// Feeds a channel's client bytes into a `SessionInput`. Memory is bounded by the SSH window, not
/// here: the engine reopens the client's window only when `onConsumed` reports that the backend
/// took a chunk, so a program that stops reading stops the client (and only that channel).
final class SessionInputSource: NIOAsyncSequenceProducerDelegate {
    typealias Producer = NIOAsyncSequenceProducer<ByteBuffer, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, SessionInputSource>

    private let box = NIOLockedValueBox<Producer.Source?>(nil)

    /// Makes the sequence; must be called once. `onConsumed` gets the size of every chunk the
    /// reader takes.
    func makeInput(onConsumed: @escaping @Sendable (Int) -> Void) -> SessionInput {
        let result = Producer.makeSequence(
            elementType: ByteBuffer.self,
            // The window bounds what is buffered; the watermarks only matter to the producer
            // protocol, which this source does not use to stop reading.
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8),
            finishOnDeinit: false,
            delegate: self
        )
        box.withLockedValue { $0 = result.source }
        let iterator = IteratorBox(result.sequence.makeAsyncIterator())
        return SessionInput {
            let chunk = await iterator.next()
            if let chunk { onConsumed(chunk.readableBytes) }
            return chunk
        }
    }

    func yield(_ buffer: ByteBuffer) {
        _ = box.withLockedValue { $0 }?.yield(buffer)
    }

    func finish() {
        box.withLockedValue { $0 }?.finish()
    }

    func produceMore() {}
    func didTerminate() {}
}

extension SessionInputSource: @unchecked Sendable {}

/// A channel's input has exactly one reader (the backend), so the iterator is never shared.
private final class IteratorBox: @unchecked Sendable {
    private var iterator: SessionInputSource.Producer.AsyncIterator

    init(_ iterator: SessionInputSource.Producer.AsyncIterator) { self.iterator = iterator }

    func next() async -> ByteBuffer? { await iterator.next() }
}
