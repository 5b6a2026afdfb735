import BerthCore
import BerthSSHEngine
import NIOConcurrencyHelpers
import NIOCore

/// What the request processor of a session channel is told, in the client's order.
enum SessionEvent: Sendable {
    case request(SSHChannelRequest)
    case closed
}

/// The engine's delegate for one session or forwarding channel: client bytes go to the
/// channel's `SessionInput`, session requests to the request processor, and the end of the
/// channel to both. Runs on the connection's event loop.
final class ChannelBridge: SSHChannelDelegate {
    private let input: SessionInputSource
    private let events: AsyncStream<SessionEvent>.Continuation?
    private let closed: EventLoopPromise<Void>
    private var finished = false

    /// `events` is nil for forwarding channels, whose requests are all refused.
    init(input: SessionInputSource, events: AsyncStream<SessionEvent>.Continuation?, closed: EventLoopPromise<Void>) {
        self.input = input
        self.events = events
        self.closed = closed
    }

    func sshChannel(_ channel: SSHChannel, received data: ByteBuffer, extendedType: UInt32?) {
        guard extendedType == nil else {
            // Extended data from a client has no meaning for a session; drop it, keep the window open.
            channel.consumed(data.readableBytes)
            return
        }
        input.yield(data)
    }

    func sshChannelEOF(_ channel: SSHChannel) {
        input.finish()
    }

    func sshChannel(_ channel: SSHChannel, request: SSHChannelRequest) {
        guard let events else {
            channel.reply(to: request, success: false)
            return
        }
        events.yield(.request(request))
    }

    func sshChannelWritabilityChanged(_ channel: SSHChannel) {}

    func sshChannelClosed(_ channel: SSHChannel) {
        finish()
    }

    /// The channel is gone (closed, refused or never opened); safe to call more than once.
    func finish() {
        guard !finished else { return }
        finished = true
        input.finish()
        events?.yield(.closed)
        events?.finish()
        closed.succeed()
    }
}

/// The sending half shared by session and forwarding channels: hops to the event loop, keeps a
/// short pipeline of writes in flight (waiting for each write made streaming a ping-pong between
/// the writer's thread and the loop) and relies on the engine for order: data, EOF, requests and
/// CLOSE leave in the order they were queued, behind the client's window and any key exchange.
struct ChannelWriter: Sendable {
    let channel: NIOLoopBound<SSHChannel>
    private let inFlight = InFlightWrites()

    init(channel: NIOLoopBound<SSHChannel>) {
        self.channel = channel
    }

    var eventLoop: any EventLoop { channel.eventLoop }

    func write(_ data: ByteBuffer, extendedType: UInt32? = nil) async throws {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute { [channel] in channel.value.write(data, extendedType: extendedType, promise: promise) }
        try await inFlight.add(promise.futureResult)
    }

    func sendRequest(_ type: String, _ payload: ByteBuffer) async {
        let promise = eventLoop.makePromise(of: Bool.self)
        eventLoop.execute { [channel] in channel.value.sendRequest(type: type, wantReply: false, payload: payload, promise: promise) }
        _ = try? await promise.futureResult.get()
    }

    func sendEOF() async {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute { [channel] in channel.value.sendEOF(promise: promise) }
        _ = try? await promise.futureResult.get()
    }

    func close() async {
        let promise = eventLoop.makePromise(of: Void.self)
        eventLoop.execute { [channel] in channel.value.close(promise: promise) }
        _ = try? await promise.futureResult.get()
    }

    func reply(to request: SSHChannelRequest, success: Bool) {
        eventLoop.execute { [channel] in channel.value.reply(to: request, success: success) }
    }
}

/// Up to `limit` writes may be outstanding before a writer waits for the oldest; memory stays
/// bounded by the limit times the largest write.
final class InFlightWrites: Sendable {
    private static let limit = 16
    private let queue = NIOLockedValueBox<[EventLoopFuture<Void>]>([])

    func add(_ future: EventLoopFuture<Void>) async throws {
        let oldest: EventLoopFuture<Void>? = queue.withLockedValue { queue in
            queue.append(future)
            return queue.count > Self.limit ? queue.removeFirst() : nil
        }
        try await oldest?.get()
    }
}
