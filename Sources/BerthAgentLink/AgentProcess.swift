import BerthAgentProtocol
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthCore
import NIOConcurrencyHelpers
import BerthForwarding
import NIOCore

/// What a program on the link produces, in order; `exit` or `lost` is the last event.
public enum AgentProcessEvent: Sendable {
    case stdout(ByteBuffer)
    case stderr(ByteBuffer)
    case exit(AgentExit)
    /// The link ended before the program's exit was known.
    case lost(String)
    /// The fast output path failed: the client's channel is gone.
    case clientGone(String)
}

/// Credit for sending on a channel: senders wait while it is exhausted.
final class SendCredit: Sendable {
    private let state = NIOLockedValueBox<(available: Int, failed: Error?, waiters: [CheckedContinuation<Void, Error>])>((0, nil, []))

    func add(_ bytes: Int) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Error>] in
            state.available += bytes
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func fail(_ error: Error) {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Error>] in
            state.failed = error
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    /// Takes up to `wanted` bytes of credit without waiting (0 when there is none or it failed).
    func tryTake(_ wanted: Int) -> Int {
        state.withLockedValue { state in
            guard state.failed == nil else { return 0 }
            let count = min(wanted, state.available)
            state.available -= count
            return count
        }
    }

    /// Takes up to `wanted` bytes of credit, waiting while there is none.
    func take(_ wanted: Int) async throws -> Int {
        while true {
            let taken = try state.withLockedValue { state -> Int in
                if let failed = state.failed { throw failed }
                let count = min(wanted, state.available)
                state.available -= count
                return count
            }
            if taken > 0 { return taken }
            try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Void, Error>) in
                let ready = state.withLockedValue { state -> Result<Void, Error>? in
                    if let failed = state.failed { return .failure(failed) }
                    if state.available > 0 { return .success(()) }
                    state.waiters.append(waiter)
                    return nil
                }
                if let ready { waiter.resume(with: ready) }
            }
        }
    }
}

/// One program running through the agent. Output arrives as `events`; call `consumed` for each
/// output chunk once it has been passed on, which gives the agent credit for more.
public final class AgentProcess: AgentChannel {
    let channel: UInt32
    private let link: AgentLink
    /// When set, output goes straight to the SSH channel on its event loop and `events` carries
    /// only the ending (docs/architecture.md, "Data path").
    private let output: SessionOutput?
    public let events: AsyncStream<AgentProcessEvent>
    private let continuation: AsyncStream<AgentProcessEvent>.Continuation
    private let credit = SendCredit()
    private let startResult = OneShot<Void>()
    private let state = NIOLockedValueBox(State())

    private struct State {
        var pid: UInt32 = 0
        var ended = false
        /// Output passed on but not yet credited back; sent in batches (see `consumed`).
        var uncredited = 0
        /// Fast-path output writes waiting in the SSH channel, and output gathered behind them.
        var writesInFlight = 0
        var heldOutput: [(stream: SessionOutputStream, bytes: ByteBuffer)] = []
        /// The exit (or loss) that waits for `heldOutput` to be queued.
        var pendingEnd: AgentProcessEvent?
        var input = PushedInput()
        /// The program's stdin pipe when Berth holds it (`DirectInput`).
        var direct: DirectInput?
        /// `started` counts once: an agent repeating it gets no more credit and no more pipes.
        var startedSeen = false
    }

    /// Stdin on the fast path: what the client sent beyond the agent's credit waits here (bounded
    /// by the client's SSH window, which reopens only as bytes go on to the agent).
    struct PushedInput {
        var feed: SessionInputFeed?
        var queued = CircularBuffer<ByteBuffer>()
        var ended = false
        var sendEOF = false
        var eofSent = false
        var draining = false
        var again = false
    }

    init(link: AgentLink, channel: UInt32, output: SessionOutput?) {
        self.link = link
        self.channel = channel
        self.output = output
        (events, continuation) = AsyncStream.makeStream(of: AgentProcessEvent.self)
    }

    /// The program's PID in the container (0 when it could not be started).
    public var pid: UInt32 { state.withLockedValue { $0.pid } }

    func waitStarted() async throws { try await startResult.wait() }

    private func started(_ result: Result<Void, Error>) { startResult.complete(result) }

    /// Stdin: waits for the agent's credit, so a program that does not read holds the client back.
    public func write(_ data: ByteBuffer) async throws {
        var data = data
        while data.readableBytes > 0 {
            let count = try await credit.take(min(data.readableBytes, 256 * 1024))
            sendInput(data.readSlice(length: count)!)
        }
    }

    public func closeInput() { sendEOF() }

    /// stdin within credit taken: into the pipe when Berth holds it (the credit comes back once
    /// it is written), else as a frame (the agent gives the credit back).
    private func sendInput(_ slice: ByteBuffer) {
        guard let direct = state.withLockedValue({ $0.direct }) else { return link.send(.input, channel, slice) }
        let count = slice.readableBytes
        direct.write(slice) { [self] in
            credit.add(count)
            pushInput()
        }
    }

    private func sendEOF() {
        if let direct = state.withLockedValue({ $0.direct }) { direct.close() } else { link.send(.eof, channel) }
    }

    /// Takes stdin from the channel's fast path, if it has one (else returns false and the caller
    /// iterates `input`). `eof`: pass the client's EOF on (not for a terminal, which has none).
    public func takeInput(_ input: SessionInput, eof: Bool) -> Bool {
        guard let feed = input.feed else { return false }
        state.withLockedValue {
            $0.input.feed = feed
            $0.input.sendEOF = eof
        }
        feed.start { [self] chunk in
            state.withLockedValue { state in
                if let chunk { state.input.queued.append(chunk) } else { state.input.ended = true }
            }
            pushInput()
        }
        return true
    }

    /// Sends queued stdin within the agent's credit, in order: one drainer at a time, and a
    /// drainer that is asked again while busy goes round once more.
    private func pushInput() {
        while true {
            let work = state.withLockedValue { state -> (slices: [ByteBuffer], eof: Bool, feed: SessionInputFeed?)? in
                guard !state.input.draining else {
                    state.input.again = true
                    return nil
                }
                state.input.draining = true
                state.input.again = false
                var slices: [ByteBuffer] = []
                while var first = state.input.queued.first {
                    let count = credit.tryTake(first.readableBytes)
                    guard count > 0 else { break }
                    slices.append(first.readSlice(length: count)!)
                    if first.readableBytes == 0 { state.input.queued.removeFirst() } else { state.input.queued[state.input.queued.startIndex] = first }
                }
                let eof = state.input.ended && state.input.queued.isEmpty && state.input.sendEOF && !state.input.eofSent
                if eof { state.input.eofSent = true }
                return (slices, eof, state.input.feed)
            }
            guard let work else { return }
            for slice in work.slices { sendInput(slice) }
            if work.eof { sendEOF() }
            let sent = work.slices.reduce(0) { $0 + $1.readableBytes }
            if sent > 0 { work.feed?.consumed(sent) }
            let again = state.withLockedValue { state -> Bool in
                state.input.draining = false
                return state.input.again
            }
            guard again else { return }
        }
    }

    /// Gives back credit for output that has been passed on. Credit goes back in quarters of the
    /// window: what is held back stays below the window, so the agent never stalls on it.
    public func consumed(_ bytes: Int) {
        guard bytes > 0 else { return }
        let batch = state.withLockedValue { state -> Int in
            state.uncredited += bytes
            guard state.uncredited >= Int(AgentLink.outputWindow / 4) else { return 0 }
            defer { state.uncredited = 0 }
            return state.uncredited
        }
        if batch > 0 { link.send(.window, channel, AgentCredit.encoded(UInt32(batch))) }
    }

    public func resize(_ size: WindowSize) {
        link.send(.resize, channel, AgentWindowSize(columns: size.columns, rows: size.rows, widthPixels: size.widthPixels, heightPixels: size.heightPixels).encoded())
    }

    /// `name` must be one of `AgentSignals.names` (with or without `SIG`).
    public func signal(_ name: String) {
        guard let canonical = AgentSignals.canonical(name) else { return }
        link.send(.signal, channel, Array(canonical.utf8))
    }

    /// Kills the program (and its process group) if it still runs, and frees the channel.
    public func close() { finish(.close) }

    /// Frees the channel but leaves a terminal program running, detached, for a later link to
    /// attach (a program that cannot be resumed is killed as by `close`). False when the program
    /// had already ended.
    @discardableResult
    public func detach() -> Bool { finish(.detach) }

    @discardableResult
    private func finish(_ frame: AgentFrameType) -> Bool {
        let first = state.withLockedValue { state -> Bool in
            defer { state.ended = true }
            return !state.ended
        }
        link.forget(channel)
        if first { link.send(frame, channel) }
        state.withLockedValue { $0.direct }?.abort()
        credit.fail(AgentLinkError("AGENT_CHANNEL_CLOSED", "the session is closed"))
        continuation.finish()
        return first
    }

    func frame(_ type: AgentFrameType, _ payload: ByteBuffer) {
        switch type {
        case .started:
            guard let reply = try? AgentProcessStarted(decoding: Array(payload.readableBytesView)) else { return }
            let first = state.withLockedValue { state -> Bool in
                defer { state.startedSeen = true }
                guard !state.startedSeen, !state.ended else { return false }
                state.pid = reply.pid
                return true
            }
            guard first else { return }
            if let offered = reply.direct { takeDirect(offered) }
            credit.add(Int(reply.inputWindow))
            started(.success(()))
            pushInput()
        case .output:
            if let output { deliver(payload, .stdout, to: output) } else { continuation.yield(.stdout(payload)) }
        case .errorOutput:
            if let output { deliver(payload, .stderr, to: output) } else { continuation.yield(.stderr(payload)) }
        case .window:
            if let bytes = try? AgentCredit.decode(Array(payload.readableBytesView)) { credit.add(Int(bytes)) }
            pushInput()
        case .exit:
            let exit = (try? AgentExit(decoding: Array(payload.readableBytesView))) ?? .status(255)
            state.withLockedValue { $0.ended = true }
            link.forget(channel)
            credit.fail(AgentLinkError("AGENT_PROGRAM_ENDED", "the program has ended"))
            end(with: .exit(exit))
        case .error:
            started(.failure(AgentLinkError("AGENT_START_FAILED", String(buffer: payload))))
        default:
            break
        }
    }

    func linkLost(_ reason: String) {
        let error = AgentLinkError("AGENT_LINK_LOST", "the agent in the container is gone: \(reason)")
        started(.failure(error))
        credit.fail(error)
        state.withLockedValue { $0.direct }?.abort()
        end(with: .lost(reason))
    }

    /// Takes the stdin end the agent offered and tells it whether that worked; on the fast path
    /// only (the pipe is written on the SSH channel's event loop).
    private func takeDirect(_ offered: AgentDirectPipes) {
        guard let output, let descriptor = link.peer?.take(offered.stdin) else {
            return link.send(.direct, channel, AgentDirectAnswer.declined.encoded())
        }
        let input = DirectInput(descriptor: descriptor, eventLoop: output.eventLoop)
        let kept = state.withLockedValue { state -> Bool in
            guard !state.ended else { return false }
            state.direct = input
            return true
        }
        guard kept else {
            _ = Glibc.close(descriptor)
            return link.send(.direct, channel, AgentDirectAnswer.declined.encoded())
        }
        input.start()
        link.countDirectPipes()
        link.send(.direct, channel, AgentDirectAnswer.stdinTaken.encoded())
    }

    /// Output on the fast path: queued on the SSH channel from its event loop; credited back
    /// once sent, so a slow client holds the program back through the agent's credit. At most
    /// `maxWritesInFlight` writes wait in the SSH channel; later output is gathered here into one
    /// buffer per stream run, so a program that prints a byte at a time to a stalled client costs
    /// its bytes (bounded by the credit), not a queue entry per byte.
    private func deliver(_ data: ByteBuffer, _ stream: SessionOutputStream, to output: SessionOutput) {
        let enqueue = { [self] in
            let now = state.withLockedValue { state -> Bool in
                if state.writesInFlight < Self.maxWritesInFlight && state.heldOutput.isEmpty {
                    state.writesInFlight += 1
                    return true
                }
                if let last = state.heldOutput.last, last.stream == stream {
                    state.heldOutput[state.heldOutput.count - 1].bytes.writeImmutableBuffer(data)
                } else {
                    state.heldOutput.append((stream, Self.compact(data)))
                }
                return false
            }
            if now { send(Self.compact(data), stream, to: output) }
        }
        if output.eventLoop.inEventLoop { enqueue() } else { output.eventLoop.execute(enqueue) }
    }

    static let maxWritesInFlight = 32

    /// A slice that would keep a much larger read buffer alive is copied out of it.
    private static func compact(_ data: ByteBuffer) -> ByteBuffer {
        guard data.storageCapacity > 4 * data.readableBytes + 4096 else { return data }
        var copy = ByteBufferAllocator().buffer(capacity: data.readableBytes)
        copy.writeImmutableBuffer(data)
        return copy
    }

    private func send(_ data: ByteBuffer, _ stream: SessionOutputStream, to output: SessionOutput) {
        let count = data.readableBytes
        let promise = output.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { [self] result in
            switch result {
            case .success: consumed(count)
            case .failure(let error): end(with: .clientGone("\(error)"))
            }
            let next = state.withLockedValue { state -> (stream: SessionOutputStream, bytes: ByteBuffer)? in
                guard !state.heldOutput.isEmpty else {
                    state.writesInFlight -= 1
                    return nil
                }
                return state.heldOutput.removeFirst()
            }
            guard let next else { return }
            send(next.bytes, next.stream, to: output)
            let ending = state.withLockedValue { state -> AgentProcessEvent? in
                guard state.heldOutput.isEmpty, let ending = state.pendingEnd else { return nil }
                state.pendingEnd = nil
                return ending
            }
            if let ending { finishEvents(ending) }
        }
        output.write(data, to: stream, promise: promise)
    }

    /// The last event. With the fast path it goes through the output's event loop, behind the
    /// output queued there, so the exit never overtakes the program's last bytes.
    private func end(with event: AgentProcessEvent) {
        guard let output else { return finishEvents(event) }
        let settle = { [self] in
            // Output still gathered behind the writes in flight goes first (see `send`).
            let now = state.withLockedValue { state -> Bool in
                guard !state.heldOutput.isEmpty else { return true }
                if state.pendingEnd == nil { state.pendingEnd = event }
                return false
            }
            if now { finishEvents(event) }
        }
        if output.eventLoop.inEventLoop { settle() } else { output.eventLoop.execute(settle) }
    }

    private func finishEvents(_ event: AgentProcessEvent) {
        continuation.yield(event)
        continuation.finish()
    }
}

/// A forwarding channel: the forward-server protocol's bytes both ways, as a `ForwardTransport`
/// for `ForwardMultiplexer`, whose output sequence is `output`.
public final class AgentForwardChannel: AgentChannel, ForwardTransport {
    let channel: UInt32
    private let link: AgentLink
    private let credit = SendCredit()
    private let opened = OneShot<Void>()
    private let continuation: AsyncStream<ByteBuffer>.Continuation
    private let stream: AsyncStream<ByteBuffer>
    private let errors: NIOLockedValueBox<[String]> = NIOLockedValueBox([])

    init(link: AgentLink, channel: UInt32) {
        self.link = link
        self.channel = channel
        (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
    }

    /// The agent's forward-server output; each chunk, once iterated, is credited back.
    public var output: AsyncMapSequence<AsyncStream<ByteBuffer>, ByteBuffer> {
        let link = self.link
        let channel = self.channel
        return stream.map { chunk in
            link.send(.window, channel, AgentCredit.encoded(UInt32(chunk.readableBytes)))
            return chunk
        }
    }

    func waitOpen() async throws { try await opened.wait() }

    private func open(_ result: Result<Void, Error>) { opened.complete(result) }

    public func send(_ bytes: [UInt8]) async throws {
        var data = ByteBuffer(bytes: bytes)
        while data.readableBytes > 0 {
            let count = try await credit.take(data.readableBytes)
            link.send(.input, channel, data.readSlice(length: count)!)
        }
    }

    public func close() {
        link.forget(channel)
        link.send(.close, channel)
        credit.fail(AgentLinkError("AGENT_CHANNEL_CLOSED", "the forward channel is closed"))
        continuation.finish()
    }

    func frame(_ type: AgentFrameType, _ payload: ByteBuffer) {
        switch type {
        case .ok:
            if let window = try? AgentCredit.decode(Array(payload.readableBytesView)) { credit.add(Int(window)) }
            open(.success(()))
        case .error:
            open(.failure(AgentLinkError("AGENT_FORWARD_FAILED", String(buffer: payload))))
        case .output: continuation.yield(payload)
        case .errorOutput: errors.withLockedValue { $0.append(String(buffer: payload)) }
        case .window:
            if let bytes = try? AgentCredit.decode(Array(payload.readableBytesView)) { credit.add(Int(bytes)) }
        case .exit:
            link.forget(channel)
            credit.fail(AgentLinkError("AGENT_FORWARD_ENDED", "the forward-server has ended"))
            continuation.finish()
        default: break
        }
    }

    func linkLost(_ reason: String) {
        let error = AgentLinkError("AGENT_LINK_LOST", "the agent in the container is gone: \(reason)")
        open(.failure(error))
        credit.fail(error)
        continuation.finish()
    }
}
