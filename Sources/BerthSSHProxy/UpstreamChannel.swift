import BerthCore
import BerthSSHEngine
import BerthSSHWire
import NIOCore

/// What an upstream channel reports, in the order the upstream sent it.
enum UpstreamEvent: Sendable {
    case data(ByteBuffer)
    case extendedData(ByteBuffer, type: UInt32)
    /// A channel request from the upstream (exit-status, exit-signal, …); the request-specific
    /// data is passed on as bytes, so a relay needs no case of its own per type.
    case request(type: String, payload: ByteBuffer)
    case eof
    case closed
}

/// One channel of the upstream connection, of any type, usable from async code: its events
/// come out as a stream, and writes, requests, EOF and close hop to the connection's event loop.
///
/// Flow control both ways rides on SSH windows: received data stays charged against our window
/// until the consumer calls `consumed` (after the client took it), and a write returns only
/// once the upstream's window let it out, so neither direction buffers more than a window.
final class UpstreamChannel: SSHChannelDelegate, @unchecked Sendable {
    let eventLoop: any EventLoop
    let events: AsyncStream<UpstreamEvent>
    private let continuation: AsyncStream<UpstreamEvent>.Continuation
    // Set and used on `eventLoop` only.
    private var channel: SSHChannel?
    private var fastOutput: SessionOutput?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        (events, continuation) = AsyncStream.makeStream(of: UpstreamEvent.self)
    }

    /// On the event loop: the engine opened (or accepted) `channel` with us as its delegate.
    func attach(_ channel: SSHChannel) {
        eventLoop.preconditionInEventLoop()
        self.channel = channel
        channel.delegate = self
    }

    /// Sends a request and, with `wantReply`, returns the upstream's verdict (else true once queued).
    func request(_ type: String, wantReply: Bool, payload: ByteBuffer = ByteBuffer()) async -> Bool {
        let promise = eventLoop.makePromise(of: Bool.self)
        eventLoop.execute {
            guard let channel = self.channel else { return promise.succeed(false) }
            channel.sendRequest(type: type, wantReply: wantReply, payload: payload, promise: promise)
        }
        return (try? await promise.futureResult.get()) ?? false
    }

    /// Returns once `data` is queued while the channel's queue is below its high-water mark, else
    /// once it went out: the writer runs ahead by at most that much, so sending and reading overlap.
    func write(_ data: ByteBuffer, extendedType: UInt32? = nil) async throws {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute {
            guard let channel = self.channel else { return promise.fail(SSHChannelError.closed) }
            let sent = self.eventLoop.makePromise(of: Void.self)
            channel.write(data, extendedType: extendedType, promise: sent)
            if channel.isWritable {
                // A failure of this write shows in the next one, which the closed channel refuses.
                promise.succeed(())
            } else {
                sent.futureResult.cascade(to: promise)
            }
        }
        try await promise.futureResult.get()
    }

    func sendEOF() {
        eventLoop.execute { self.channel?.sendEOF(promise: nil) }
    }

    func close() {
        eventLoop.execute { self.channel?.close(promise: nil) }
    }

    /// Data (stdout, and stderr as extended type 1) goes straight to the client's channel on the
    /// event loop both connections share, without a task switch per packet (docs/architecture.md,
    /// "Data path"); the upstream's window reopens as the client's window takes it. EOF and the
    /// upstream's requests still come through `events`, behind the data already passed on.
    func useFastOutput(_ output: SessionOutput) {
        guard output.eventLoop === eventLoop else { return }
        eventLoop.execute { self.fastOutput = output }
    }

    /// The client took `bytes` of what this channel delivered: reopen the upstream's window.
    func consumed(_ bytes: Int) {
        guard bytes > 0 else { return }
        eventLoop.execute { self.channel?.consumed(bytes) }
    }

    // MARK: SSHChannelDelegate (event loop)

    func sshChannel(_ channel: SSHChannel, received data: ByteBuffer, extendedType: UInt32?) {
        if let fastOutput {
            let count = data.readableBytes
            guard extendedType == nil || extendedType == 1 else {
                channel.consumed(count)
                return
            }
            let written = eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { _ in self.channel?.consumed(count) }
            fastOutput.write(data, to: extendedType == nil ? .stdout : .stderr, promise: written)
            return
        }
        if let extendedType {
            continuation.yield(.extendedData(data, type: extendedType))
        } else {
            continuation.yield(.data(data))
        }
    }

    func sshChannelEOF(_ channel: SSHChannel) {
        continuation.yield(.eof)
    }

    func sshChannel(_ channel: SSHChannel, request: SSHChannelRequest) {
        // Nothing the upstream asks of the client needs a yes: keepalive@openssh.com is answered
        // at once (any answer proves we are alive), and the rest go down without a reply.
        channel.reply(to: request, success: false)
        continuation.yield(.request(type: request.type, payload: request.payload))
    }

    func sshChannelWritabilityChanged(_ channel: SSHChannel) {}

    func sshChannelClosed(_ channel: SSHChannel) {
        self.channel = nil
        continuation.yield(.closed)
        continuation.finish()
    }
}
