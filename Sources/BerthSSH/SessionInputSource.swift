import BerthCore
import NIOConcurrencyHelpers
import NIOCore

/// Feeds a channel's client bytes into a `SessionInput`, read either as a sequence (a task per
/// chunk) or pushed on the event loop (`SessionInputFeed`, the fast path). Memory is bounded by
/// the SSH window, not here: the engine reopens the client's window only when the backend reports
/// a chunk passed on, so a program that stops reading stops the client (and only that channel).
/// `yield`, `finish` and the feed's start run on the channel's event loop.
final class SessionInputSource: Sendable {
    private let state = NIOLockedValueBox(State())

    private struct State {
        var queued = CircularBuffer<ByteBuffer>()
        var finished = false
        var waiter: CheckedContinuation<ByteBuffer?, Never>?
        var receiver: (@Sendable (ByteBuffer?) -> Void)?
    }

    /// Makes the input; call once. `consume` reopens the window for a chunk's size (any thread).
    func makeInput(eventLoop: any EventLoop, consume: @escaping @Sendable (Int) -> Void) -> SessionInput {
        let feed = SessionInputFeed(eventLoop: eventLoop, begin: { [self] receive in start(receive) }, acknowledge: consume)
        return SessionInput(feed: feed) { [self] in
            let chunk = await next()
            if let chunk { consume(chunk.readableBytes) }
            return chunk
        }
    }

    func yield(_ buffer: ByteBuffer) {
        let deliver = state.withLockedValue { state -> (@Sendable (ByteBuffer?) -> Void)? in
            if let receiver = state.receiver { return receiver }
            if let waiter = state.waiter {
                state.waiter = nil
                waiter.resume(returning: buffer)
            } else {
                state.queued.append(buffer)
            }
            return nil
        }
        deliver?(buffer)
    }

    /// EOF or the channel's end; safe to call more than once.
    func finish() {
        let deliver = state.withLockedValue { state -> (@Sendable (ByteBuffer?) -> Void)? in
            guard !state.finished else { return nil }
            state.finished = true
            state.waiter?.resume(returning: nil)
            state.waiter = nil
            return state.receiver
        }
        deliver?(nil)
    }

    private func start(_ receive: @escaping @Sendable (ByteBuffer?) -> Void) {
        let (early, finished) = state.withLockedValue { state -> ([ByteBuffer], Bool) in
            state.receiver = receive
            defer { state.queued.removeAll() }
            return (Array(state.queued), state.finished)
        }
        for chunk in early { receive(chunk) }
        if finished { receive(nil) }
    }

    /// The next chunk; nil at the end, or when the reading task is cancelled.
    private func next() async -> ByteBuffer? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<ByteBuffer?, Never>) in
                let ready = state.withLockedValue { state -> ByteBuffer?? in
                    if let chunk = state.queued.popFirst() { return .some(chunk) }
                    if state.finished || Task.isCancelled { return .some(nil) }
                    state.waiter = waiter
                    return .none
                }
                if let ready { waiter.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<ByteBuffer?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
}
