import NIOCore

// The three-level handler protocol of docs/architecture.md, "The layer stack". The SSH front end drives the outermost layer;
// every layer (metrics, audit, auth, config, security, backend) implements the same protocols
// and wraps the next one, delegating whatever it does not care about.

/// Server level: lifetime of the listener and arrival of TCP connections.
public protocol ServerHandler: Sendable {
    /// The listener is up. Throwing aborts start-up.
    func onReady() async throws
    /// A TCP connection arrived, before the SSH handshake. Throwing refuses it.
    func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler
    /// Graceful stop: finish or end work before `deadline`.
    func onShutdown(deadline: ContinuousClock.Instant) async
}

/// Connection level: authentication and the handshake.
public protocol NetworkConnectionHandler: Sendable {
    func onAuthPassword(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome
    /// `publicKey` is in authorized_keys form without comment: `ssh-ed25519 AAAA…`. The SSH
    /// layer has already verified the client holds the private key.
    func onAuthPublicKey(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome
    /// The answer to the second-factor prompt after a success with `secondFactorPending`;
    /// `metadata` is what that success returned.
    func onAuthSecondFactor(_ metadata: ConnectionMetadata, code: String) async -> AuthOutcome
    /// A keyboard-interactive login the auth layer runs itself (OAuth2 device flow): it talks to
    /// the user through `conversation` and answers when done.
    func onAuthKeyboardInteractive(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome
    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async
    /// Authentication finished. Config is fetched and the container started here; channels wait
    /// until it returns. Throwing closes the connection.
    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler
    /// The TCP connection is gone; release everything.
    func onDisconnect() async
}

/// Why a channel open was refused; the reason codes are RFC 4254 §5.1's.
public struct ChannelRejection: Error, Sendable, Hashable {
    public enum Reason: UInt32, Sendable {
        case administrativelyProhibited = 1
        case connectFailed = 2
        case unknownChannelType = 3
        case resourceShortage = 4
    }

    public let reason: Reason
    public let message: String

    public init(_ reason: Reason, _ message: String) {
        self.reason = reason
        self.message = message
    }
}

/// SSH-connection level: channels and global requests of an authenticated connection.
public protocol SSHConnectionHandler: Sendable {
    /// A session channel was opened. Throw `ChannelRejection` to refuse it.
    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler
    func onUnsupportedChannel(type: String) async
    func onUnsupportedGlobalRequest(type: String) async
    /// A `direct-tcpip` channel (ssh -L). Return once the target is connected; the backend then
    /// owns `channel` and closes it when the connection ends. Throw `ChannelRejection` to refuse.
    func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws
    /// `tcpip-forward` (ssh -R): start listening and return the bound port. Throw `RequestRefused`.
    func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32
    func onCancelReverseForward(_ forward: ReverseForward) async throws
    /// `direct-streamlocal@openssh.com` (ssh -L to a socket path); as `onDirectForward`.
    func onDirectStreamLocal(path: String, channel: any ForwardChannel) async throws
    /// `streamlocal-forward@openssh.com` (ssh -R from a socket path). Throw `RequestRefused`.
    func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws
    func onCancelStreamLocalForward(path: String) async throws
}

/// Terminal parameters of a `pty-req`.
public struct PtyRequest: Sendable, Hashable {
    public var term: String
    public var columns: UInt32
    public var rows: UInt32
    public var widthPixels: UInt32
    public var heightPixels: UInt32
    /// Encoded terminal modes as sent by the client (opcode/uint32 pairs).
    public var modes: [UInt8: UInt32]

    public init(term: String, columns: UInt32, rows: UInt32, widthPixels: UInt32 = 0, heightPixels: UInt32 = 0, modes: [UInt8: UInt32] = [:]) {
        self.term = term
        self.columns = columns
        self.rows = rows
        self.widthPixels = widthPixels
        self.heightPixels = heightPixels
        self.modes = modes
    }
}

/// A `window-change` request.
public struct WindowSize: Sendable, Hashable {
    public var columns: UInt32
    public var rows: UInt32
    public var widthPixels: UInt32
    public var heightPixels: UInt32

    public init(columns: UInt32, rows: UInt32, widthPixels: UInt32 = 0, heightPixels: UInt32 = 0) {
        self.columns = columns
        self.rows = rows
        self.widthPixels = widthPixels
        self.heightPixels = heightPixels
    }
}

/// A refused channel request: the client gets SSH failure, the log gets `code` and `message`.
public struct RequestRefused: CodedError, Hashable {
    public let code: MessageCode
    public let message: String

    public init(_ code: MessageCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// Session-channel level. Requests arrive one at a time in the order the client sent them;
/// throwing refuses the request (SSH failure) and leaves the channel usable.
/// `requestID` counts the channel's requests from 0.
public protocol SessionChannelHandler: Sendable {
    func onEnv(requestID: UInt64, name: String, value: String) async throws
    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws
    /// Start programs. Return once the program runs; its output and exit go through the
    /// `SessionChannel` given at open.
    func onShell(requestID: UInt64) async throws
    func onExec(requestID: UInt64, command: String) async throws
    func onSubsystem(requestID: UInt64, name: String) async throws
    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws
    func onSignal(requestID: UInt64, signal: String) async throws
    /// `break` (RFC 4335): a serial line break of about `milliseconds`. Throw to refuse.
    func onBreak(requestID: UInt64, milliseconds: UInt32) async throws
    func onUnsupportedRequest(requestID: UInt64, type: String) async
    /// `x11-req`: X clients of this session's program reach the client through `opener`.
    func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws
    /// `auth-agent-req@openssh.com`: the session's programs reach the client's agent through `opener`.
    func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws
    /// The channel is closed in both directions; stop the program if it still runs.
    func onClose() async
}

/// How a backend talks back to the client over one session channel (docs/architecture.md, "The layer stack").
public protocol SessionChannel: Sendable {
    /// Per-connection channel number, counting from 0.
    var channelID: UInt64 { get }
    var connection: ConnectionMetadata { get }
    /// What the client sends. Ends when the client sends EOF or closes the channel.
    var stdin: SessionInput { get }
    /// Suspends while the client's window is full, so a fast program cannot grow memory.
    func writeStdout(_ data: ByteBuffer) async throws
    func writeStderr(_ data: ByteBuffer) async throws
    /// At most once; ignored after the first exit report.
    func sendExitStatus(_ status: UInt32) async
    /// At most once. `name` without the `SIG` prefix.
    func sendExitSignal(name: String, coreDumped: Bool, message: String) async
    /// EOF towards the client.
    func closeWrite() async
    /// Ends the channel.
    func close() async
    /// The fast output path, when the channel has one (the SSH front end's channels do).
    var output: SessionOutput? { get }
    /// A lifecycle event for the audit log; channels that do not record pass it on or drop it.
    func record(_ event: SessionLifecycleEvent) async
}

extension SessionChannel {
    public var output: SessionOutput? { nil }
    public func record(_ event: SessionLifecycleEvent) async {}
}

/// What happened to a session's program beyond the SSH requests, for the audit log
/// (docs/agent-protocol.md, "Resumable sessions"): wrappers pass it on, the audit layer records it.
public enum SessionLifecycleEvent: Sendable, Equatable {
    /// The channel ended; the program keeps running, detached.
    case detached(pid: UInt32)
    /// A detached program was attached to this channel.
    case resumed(pid: UInt32)
}

/// The client's input on a session channel, as chunks of bytes, with backpressure: the client's
/// window is only reopened as chunks are consumed.
public struct SessionInput: AsyncSequence, Sendable {
    public typealias Element = ByteBuffer

    private let nextChunk: @Sendable () async -> ByteBuffer?
    /// The fast path, when the channel has one; a reader uses either it or the sequence.
    public let feed: SessionInputFeed?

    public init(feed: SessionInputFeed? = nil, next: @escaping @Sendable () async -> ByteBuffer?) {
        self.nextChunk = next
        self.feed = feed
    }

    public struct AsyncIterator: AsyncIteratorProtocol {
        let nextChunk: @Sendable () async -> ByteBuffer?
        public mutating func next() async -> ByteBuffer? { await nextChunk() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(nextChunk: nextChunk) }

    /// The same input, with `observe` seeing every chunk as it is consumed (metrics, audit).
    public func tapped(_ observe: @escaping @Sendable (ByteBuffer) -> Void) -> SessionInput {
        let box = SingleReaderIterator(makeAsyncIterator())
        return SessionInput(feed: feed?.tapped(observe)) {
            let chunk = await box.next()
            if let chunk { observe(chunk) }
            return chunk
        }
    }
}

/// The fast input path (docs/architecture.md, "Data path"): the client's bytes pushed to the
/// backend on the connection's event loop, with no task switch per chunk. The client's window
/// reopens only as the backend reports chunks passed on (`consumed`), so memory stays bounded
/// by the window exactly as with the sequence.
public struct SessionInputFeed: Sendable {
    public let eventLoop: any EventLoop
    private let begin: @Sendable (@escaping @Sendable (ByteBuffer?) -> Void) -> Void
    private let acknowledge: @Sendable (Int) -> Void

    /// `begin` delivers, on `eventLoop`, every chunk not yet read and then each new one, and nil
    /// once at the end; `acknowledge` reopens the window (any thread).
    public init(
        eventLoop: any EventLoop, begin: @escaping @Sendable (@escaping @Sendable (ByteBuffer?) -> Void) -> Void,
        acknowledge: @escaping @Sendable (Int) -> Void
    ) {
        self.eventLoop = eventLoop
        self.begin = begin
        self.acknowledge = acknowledge
    }

    /// Starts delivery to `receive` (called on `eventLoop`; nil means EOF or the channel closed).
    /// At most once per channel, and instead of iterating the sequence.
    public func start(_ receive: @escaping @Sendable (ByteBuffer?) -> Void) {
        if eventLoop.inEventLoop { begin(receive) } else { eventLoop.execute { [begin] in begin(receive) } }
    }

    /// `bytes` of delivered input have been passed on.
    public func consumed(_ bytes: Int) { acknowledge(bytes) }

    func tapped(_ observe: @escaping @Sendable (ByteBuffer) -> Void) -> SessionInputFeed {
        let begin = self.begin
        return SessionInputFeed(
            eventLoop: eventLoop,
            begin: { receive in
                begin { chunk in
                    if let chunk { observe(chunk) }
                    receive(chunk)
                }
            }, acknowledge: acknowledge)
    }
}

/// Input has exactly one reader, so its iterator is never used concurrently.
private final class SingleReaderIterator: @unchecked Sendable {
    private var iterator: SessionInput.AsyncIterator
    init(_ iterator: SessionInput.AsyncIterator) { self.iterator = iterator }
    func next() async -> ByteBuffer? { await iterator.next() }
}

/// The user's side of a keyboard-interactive login (RFC 4256): each `ask` shows `instruction` and
/// returns one answer per prompt (none for an instruction alone). Throws when the client gives up.
public protocol KeyboardInteractiveConversation: Sendable {
    func ask(name: String, instruction: String, prompts: [(prompt: String, echo: Bool)]) async throws -> [String]
}
