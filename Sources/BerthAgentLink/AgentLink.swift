import BerthAgentProtocol
import BerthCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// How bytes reach the agent: `send` queues a whole frame (in order, without waiting; what is
/// queued is bounded by the channels' credits), `close` ends the link. Bytes from the agent are
/// handed to `AgentLink.receive` by whoever reads the transport.
public struct AgentLinkIO: Sendable {
    public let send: @Sendable (ByteBuffer) -> Void
    public let close: @Sendable () async -> Void

    public init(send: @escaping @Sendable (ByteBuffer) -> Void, close: @escaping @Sendable () async -> Void) {
        self.send = send
        self.close = close
    }
}

/// Why a link or a request on it failed: Core's general coded error (codes AGENT_LINK_*,
/// AGENT_START_FAILED, …).
public typealias AgentLinkError = BerthError

/// Berth's end of one link to a container's agent (docs/agent-protocol.md): programs, file
/// writes and forwarding channels multiplexed over one byte stream.
public final class AgentLink: Sendable {
    /// `socket`, `tcp` or `exec`: which kind of link this is, for the log and the bench.
    public let kind: String
    private let io: AgentLinkIO
    private let state = NIOLockedValueBox(State())
    private let logger: Logger
    /// The agent's hello payload, or why the link ended first.
    private let helloAnswer = OneShot<[UInt8]>()

    /// What Berth grants a program's output up front and keeps topped up as it is consumed.
    static let outputWindow: UInt32 = 1 << 20

    private struct State {
        var pending = ByteBuffer()
        var nextChannel: UInt32 = 1
        var channels: [UInt32: AgentChannel] = [:]
        var closedReason: String?
        /// The account asked for and its request, which every later session shares.
        var account: (user: AgentUser, request: Task<AgentUserReply, Error>)?
        /// The `resumable` request, sent once per link.
        var resumable: (settings: AgentResumable, request: Task<Void, Error>)?
        var closeWaiters: [CheckedContinuation<Void, Never>] = []
        /// What the agent announced before its hello reply.
        var features: AgentFeatures = []
        /// The agent's process, on a socket link where it is visible (direct pipes).
        var peer: AgentPeerProcess?
        var directPipesAllowed = true
        var directPipesTaken = 0
    }

    public init(kind: String, io: AgentLinkIO, logger: Logger) {
        self.kind = kind
        self.io = io
        self.logger = logger
    }

    // MARK: Handshake

    /// Sends `hello` and waits for the agent's; throws with the agent's reason if it refuses.
    public func hello(secret: [UInt8], timeout: Duration) async throws {
        send(.hello, 0, AgentHello(secret: secret).encoded())
        let payload = try await withDeadline(timeout, AgentLinkError("AGENT_LINK_NO_HELLO", "the agent did not answer within \(timeout)")) {
            try await self.helloAnswer.wait()
        }
        let reply = try AgentHelloReply(decoding: payload)
        guard reply.version == AgentFrameHeader.version else {
            throw AgentLinkError("AGENT_LINK_VERSION", "the agent speaks protocol version \(reply.version), Berth \(AgentFrameHeader.version)")
        }
    }

    /// Whether programs without a terminal get direct pipes (docs/agent-protocol.md, "Direct
    /// pipes"): the agent offers them and its process is at hand.
    public var directPipes: Bool {
        state.withLockedValue { $0.directPipesAllowed && $0.peer != nil && $0.features.contains(.directPipes) }
    }

    /// Tests turn direct pipes off to exercise the link's own path for the same programs.
    public func allowDirectPipes(_ allowed: Bool) { state.withLockedValue { $0.directPipesAllowed = allowed } }

    /// Programs whose pipes Berth took (tests check which path the bytes went).
    var directPipesTaken: Int { state.withLockedValue { $0.directPipesTaken } }

    func countDirectPipes() { state.withLockedValue { $0.directPipesTaken += 1 } }

    func setPeer(_ peer: AgentPeerProcess?) { state.withLockedValue { $0.peer = peer } }

    var peer: AgentPeerProcess? { state.withLockedValue { $0.peer } }

    // MARK: Requests

    /// Starts a program. Returns once the agent reports it running. With `output`, the program's
    /// output goes straight to it (see `AgentProcess`).
    public func start(argv: [String], environment: [String: String], terminal: WindowSize?, output: SessionOutput? = nil) async throws -> AgentProcess {
        let process = AgentProcess(link: self, channel: try reserveChannel(), output: output)
        register(process.channel, process)
        let request = AgentProcessStart(
            argv: argv, environment: environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" },
            terminal: terminal.map { AgentWindowSize(columns: $0.columns, rows: $0.rows, widthPixels: $0.widthPixels, heightPixels: $0.heightPixels) },
            outputWindow: Self.outputWindow, directPipes: output != nil && directPipes)
        send(.start, process.channel, request.encoded())
        try await process.waitStarted()
        return process
    }

    /// Writes a file in the container (created or truncated, `mode`).
    public func writeFile(path: String, contents: [UInt8], mode: UInt32 = 0o600) async throws {
        let request = AgentRequest(link: self, channel: try reserveChannel())
        register(request.channel, request)
        send(.writeFile, request.channel, AgentWriteFile(path: path, mode: mode, contents: contents).encoded())
        _ = try await request.answer()
    }

    /// Makes later programs of this link run as `user` (adding the account if the container
    /// lacks it). Asked once per link and account: every session of a connection calls this
    /// before its program, and all of them share the first request's answer.
    public func useAccount(_ user: AgentUser) async throws -> AgentUserReply {
        let request = state.withLockedValue { state -> Task<AgentUserReply, Error> in
            if let current = state.account, current.user == user { return current.request }
            let request = Task { try await self.requestAccount(user) }
            state.account = (user, request)
            return request
        }
        return try await request.value
    }

    private func requestAccount(_ user: AgentUser) async throws -> AgentUserReply {
        let request = AgentRequest(link: self, channel: try reserveChannel())
        register(request.channel, request)
        send(.user, request.channel, user.encoded())
        do {
            return try AgentUserReply(decoding: Array(buffer: try await request.answer()))
        } catch let error as AgentLinkError where error.code == "AGENT_LINK_LOST" {
            // An agent from before accounts ends the link on the unknown frame.
            throw AgentLinkError(
                "AGENT_USER_FAILED", "account \(user.name): \(error.message) (an agent older than the account request? use the current agent or loginUser.mode: container)")
        } catch let error as AgentLinkError {
            let prefix = "AGENT_USER_FAILED: "
            let reason = error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : error.message
            throw AgentLinkError("AGENT_USER_FAILED", "account \(user.name): \(reason)")
        }
    }

    /// Makes the link's terminal programs outlive it (docs/agent-protocol.md, "Resumable
    /// sessions"), owned by the authenticated user `settings.owner`. Sent once per link; every
    /// session shares the answer.
    public func enableResume(_ settings: AgentResumable) async throws {
        let request = state.withLockedValue { state -> Task<Void, Error> in
            if let current = state.resumable, current.settings == settings { return current.request }
            let request = Task {
                let request = AgentRequest(link: self, channel: try self.reserveChannel())
                self.register(request.channel, request)
                self.send(.resumable, request.channel, settings.encoded())
                do {
                    _ = try await request.answer()
                } catch let error as AgentLinkError where error.code == "AGENT_LINK_LOST" {
                    // An agent from before resumable sessions ends the link on the unknown frame.
                    throw AgentLinkError("AGENT_RESUME_FAILED", "\(error.message) (an agent older than resumable sessions? use the current agent or persistence.resume: never)")
                }
            }
            state.resumable = (settings, request)
            return request
        }
        try await request.value
    }

    /// The link's user's detached sessions in the container (after `enableResume`).
    public func detachedSessions() async throws -> [AgentDetachedSession] {
        let request = AgentRequest(link: self, channel: try reserveChannel())
        register(request.channel, request)
        send(.sessions, request.channel)
        return try AgentSessionList(decoding: Array(buffer: try await request.answer())).sessions
    }

    /// Attaches the detached session `pid`: its buffered output comes first, then it goes on as
    /// a program started here.
    public func attach(pid: UInt32, terminal: WindowSize, output: SessionOutput? = nil) async throws -> AgentProcess {
        let process = AgentProcess(link: self, channel: try reserveChannel(), output: output)
        register(process.channel, process)
        let request = AgentAttach(
            pid: pid, terminal: AgentWindowSize(columns: terminal.columns, rows: terminal.rows, widthPixels: terminal.widthPixels, heightPixels: terminal.heightPixels),
            outputWindow: Self.outputWindow)
        send(.attach, process.channel, request.encoded())
        try await process.waitStarted()
        return process
    }

    /// A forwarding channel carrying the forward-server protocol; see `AgentForwardChannel`.
    public func openForward() async throws -> AgentForwardChannel {
        let forward = AgentForwardChannel(link: self, channel: try reserveChannel())
        register(forward.channel, forward)
        send(.openForward, forward.channel, AgentCredit.encoded(Self.outputWindow))
        try await forward.waitOpen()
        return forward
    }

    /// Ends the link; the agent kills what still runs.
    public func close() async {
        await io.close()
        lost("the link was closed by Berth")
    }

    public var closedReason: String? { state.withLockedValue { $0.closedReason } }

    /// Returns once the link has ended.
    public func waitClosed() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            let closed = state.withLockedValue { state -> Bool in
                if state.closedReason != nil { return true }
                state.closeWaiters.append(waiter)
                return false
            }
            if closed { waiter.resume() }
        }
    }

    // MARK: Plumbing

    private func reserveChannel() throws -> UInt32 {
        try state.withLockedValue { state in
            if let reason = state.closedReason { throw AgentLinkError("AGENT_LINK_LOST", "the agent in the container is gone: \(reason)") }
            defer { state.nextChannel &+= 1 }
            return state.nextChannel
        }
    }

    private func register(_ channel: UInt32, _ handler: AgentChannel) {
        let reason = state.withLockedValue { state -> String? in
            if let reason = state.closedReason { return reason }
            state.channels[channel] = handler
            return nil
        }
        if let reason { handler.linkLost(reason) }
    }

    func forget(_ channel: UInt32) {
        state.withLockedValue { _ = $0.channels.removeValue(forKey: channel) }
    }

    func send(_ type: AgentFrameType, _ channel: UInt32, _ payload: [UInt8] = []) {
        var frame = ByteBufferAllocator().buffer(capacity: AgentFrameHeader.size + payload.count)
        Self.writeHeader(&frame, type, channel, payload.count)
        frame.writeBytes(payload)
        io.send(frame)
    }

    func send(_ type: AgentFrameType, _ channel: UInt32, _ payload: ByteBuffer) {
        var frame = ByteBufferAllocator().buffer(capacity: AgentFrameHeader.size + payload.readableBytes)
        Self.writeHeader(&frame, type, channel, payload.readableBytes)
        frame.writeImmutableBuffer(payload)
        io.send(frame)
    }

    private static func writeHeader(_ frame: inout ByteBuffer, _ type: AgentFrameType, _ channel: UInt32, _ count: Int) {
        frame.writeInteger(UInt32(count + 5))
        frame.writeInteger(type.rawValue)
        frame.writeInteger(channel)
    }

    /// Bytes from the agent, in order. Payloads are slices of what arrived, not copies.
    public func receive(_ bytes: ByteBuffer) {
        let frames: [(AgentFrameHeader, ByteBuffer)]
        do {
            frames = try state.withLockedValue { state in try Self.split(&state.pending, bytes) }
        } catch {
            logger.log(.error, "AGENT_LINK_PROTOCOL_ERROR", "the agent sent malformed data: \(error)")
            lost("the agent sent malformed data: \(error)")
            Task { await io.close() }
            return
        }
        for (header, payload) in Self.merged(frames) { dispatch(header, payload) }
    }

    /// Output frames of one channel that arrived together go on as one piece: a program's
    /// pipe-sized chunks then cost one write into the SSH channel per read, not one each. A piece
    /// stops growing at `joinLimit`: joining copies, and beyond two full SSH packets it saves
    /// nothing.
    static let joinLimit = 64 * 1024

    static func merged(_ frames: [(AgentFrameHeader, ByteBuffer)]) -> [(AgentFrameHeader, ByteBuffer)] {
        guard frames.count > 1 else { return frames }
        func joins(_ a: AgentFrameHeader, _ b: AgentFrameHeader) -> Bool {
            (a.type == .output || a.type == .errorOutput) && a.type == b.type && a.channel == b.channel
        }
        var result: [(AgentFrameHeader, ByteBuffer)] = []
        var index = 0
        while index < frames.count {
            var end = index + 1
            var size = frames[index].1.readableBytes
            while end < frames.count && size < joinLimit && joins(frames[index].0, frames[end].0) {
                size += frames[end].1.readableBytes
                end += 1
            }
            if end - index == 1 {
                result.append(frames[index])
            } else {
                let total = frames[index..<end].reduce(0) { $0 + $1.1.readableBytes }
                var joined = ByteBufferAllocator().buffer(capacity: total)
                for (_, payload) in frames[index..<end] { joined.writeImmutableBuffer(payload) }
                var header = frames[index].0
                header.payloadLength = total
                result.append((header, joined))
            }
            index = end
        }
        return result
    }

    private static func split(_ pending: inout ByteBuffer, _ input: ByteBuffer) throws -> [(AgentFrameHeader, ByteBuffer)] {
        var input = input
        if pending.readableBytes == 0 {
            swap(&pending, &input)
        } else {
            pending.writeBuffer(&input)
        }
        var frames: [(AgentFrameHeader, ByteBuffer)] = []
        while pending.readableBytes >= AgentFrameHeader.size {
            let header = try pending.withUnsafeReadableBytes { try AgentFrameHeader(parsing: $0) }
            guard pending.readableBytes >= AgentFrameHeader.size + header.payloadLength else { break }
            pending.moveReaderIndex(forwardBy: AgentFrameHeader.size)
            frames.append((header, pending.readSlice(length: header.payloadLength)!))
        }
        if pending.readableBytes == 0 {
            pending = ByteBuffer()
        } else if pending.readerIndex > 0 && frames.count > 0 {
            var rest = ByteBuffer()
            rest.writeBuffer(&pending)
            pending = rest
        }
        return frames
    }

    private func dispatch(_ header: AgentFrameHeader, _ payload: ByteBuffer) {
        if header.channel == 0 {
            switch header.type {
            case .hello:
                helloAnswer.complete(.success(Array(payload.readableBytesView)))
            case .ok:
                // The agent's features, sent just before its hello reply.
                if let features = try? AgentFeatures(decoding: Array(payload.readableBytesView)) {
                    state.withLockedValue { $0.features = features }
                }
            case .error:
                let reason = String(buffer: payload)
                logger.log(.error, "AGENT_LINK_REFUSED", "the agent ended the link: \(reason)")
                lost("the agent ended the link: \(reason)")
            default:
                break
            }
            return
        }
        guard let handler = state.withLockedValue({ $0.channels[header.channel] }) else { return }
        handler.frame(header.type, payload)
    }

    /// The transport ended (EOF or error): every channel learns it, nothing waits forever.
    public func lost(_ reason: String) {
        let (first, handlers, waiters) = state.withLockedValue { state -> (Bool, [AgentChannel], [CheckedContinuation<Void, Never>]) in
            guard state.closedReason == nil else { return (false, [], []) }
            state.closedReason = reason
            defer {
                state.channels = [:]
                state.closeWaiters = []
            }
            return (true, Array(state.channels.values), state.closeWaiters)
        }
        if first { helloAnswer.complete(.failure(AgentLinkError("AGENT_LINK_LOST", reason))) }
        for handler in handlers { handler.linkLost(reason) }
        for waiter in waiters { waiter.resume() }
    }
}

/// A channel's receiver of frames.
protocol AgentChannel: AnyObject, Sendable {
    func frame(_ type: AgentFrameType, _ payload: ByteBuffer)
    func linkLost(_ reason: String)
}

/// A request answered by `ok` or `error` (file writes).
final class AgentRequest: AgentChannel {
    let channel: UInt32
    private let link: AgentLink
    private let result = OneShot<ByteBuffer>()

    init(link: AgentLink, channel: UInt32) {
        self.link = link
        self.channel = channel
    }

    func answer() async throws -> ByteBuffer { try await result.wait() }

    private func complete(_ outcome: Result<ByteBuffer, Error>) {
        link.forget(channel)
        result.complete(outcome)
    }

    func frame(_ type: AgentFrameType, _ payload: ByteBuffer) {
        switch type {
        case .ok: complete(.success(payload))
        case .error: complete(.failure(AgentLinkError("AGENT_REQUEST_FAILED", String(buffer: payload))))
        default: break
        }
    }

    func linkLost(_ reason: String) {
        complete(.failure(AgentLinkError("AGENT_LINK_LOST", "the agent in the container is gone: \(reason)")))
    }
}
