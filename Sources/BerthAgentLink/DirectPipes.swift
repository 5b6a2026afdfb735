import BerthAgentProtocol
import BerthCore
import CPidfd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// The agent's process, held as a pidfd from the socket link's peer credentials, from which
/// Berth takes a program's pipe ends (docs/agent-protocol.md, "Direct pipes"). The pidfd names the
/// process itself, so a PID reused after the agent died cannot be mistaken for it; every end taken
/// is still checked against the pipe inode the agent reported.
final class AgentPeerProcess: Sendable {
    private let pidfd: Int32

    private init(pidfd: Int32) { self.pidfd = pidfd }

    deinit { _ = Glibc.close(pidfd) }

    /// The agent at the other end of a connected unix socket; nil when its PID is not visible
    /// here (Berth in another PID namespace) or the kernel has no pidfd.
    static func of(_ channel: any Channel) async -> AgentPeerProcess? {
        guard let provider = channel as? any SocketOptionProvider else { return nil }
        guard let credentials: berth_peer_credentials = try? await provider.unsafeGetSocketOption(level: .init(SOL_SOCKET), name: .init(SO_PEERCRED)).get(),
            credentials.pid > 0
        else { return nil }
        let pidfd = berth_pidfd_open(credentials.pid)
        return pidfd >= 0 ? AgentPeerProcess(pidfd: pidfd) : nil
    }

    /// A copy of the agent's descriptor `end`, if it is the pipe the agent described (close-on-exec,
    /// as pidfd_getfd makes it). Taking needs ptrace rights over the agent (root, or
    /// CAP_SYS_PTRACE): without them every program falls back to the link.
    func take(_ end: AgentPipeEnd) -> Int32? {
        guard end.descriptor <= UInt32(Int32.max) else { return nil }
        let descriptor = berth_pidfd_getfd(pidfd, Int32(end.descriptor))
        guard descriptor >= 0 else { return nil }
        var info = stat()
        guard fstat(descriptor, &info) == 0, info.st_mode & S_IFMT == S_IFIFO, UInt64(info.st_ino) == end.inode else {
            _ = Glibc.close(descriptor)
            return nil
        }
        return descriptor
    }

    /// All three ends, or none (what was taken is closed again).
    func take(_ pipes: AgentDirectPipes) -> (stdin: Int32, stdout: Int32, stderr: Int32)? {
        var taken: [Int32] = []
        for end in [pipes.stdin, pipes.stdout, pipes.stderr] {
            guard let descriptor = take(end) else {
                for descriptor in taken { _ = Glibc.close(descriptor) }
                return nil
            }
            taken.append(descriptor)
        }
        return (taken[0], taken[1], taken[2])
    }
}

/// A program's pipes held by Berth: its output is read on the SSH channel's event loop and handed
/// on as output frames would be; reading stops while more than the output window waits for the
/// client, as the agent's credit would stop it. Its stdin is written straight into the pipe.
/// All state is confined to `eventLoop`.
final class DirectPipes: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let window: Int
    private let received: (ByteBuffer, SessionOutputStream) -> Void
    private let outputsClosed: () -> Void
    private var readers: [DirectPipeReader] = []
    private var openOutputs = 2
    /// Output handed on and not yet consumed by the client.
    private var outstanding = 0
    private let descriptors: (stdin: Int32, stdout: Int32, stderr: Int32)
    private var input: EventLoopFuture<any Channel>?
    private var pendingWrites = 0
    private var inputEnding = false
    private var closed = false

    private static let ignoreSIGPIPE: Void = {
        // Linux raises SIGPIPE on a write to a pipe whose reader is gone (a program that closed its
        // stdin); NIO avoids it only for sockets. The write then fails with EPIPE instead.
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Takes ownership of the three descriptors; nothing is read before `start`.
    init(
        stdin: Int32, stdout: Int32, stderr: Int32, eventLoop: any EventLoop, window: Int,
        received: @escaping (ByteBuffer, SessionOutputStream) -> Void, outputsClosed: @escaping () -> Void
    ) {
        _ = Self.ignoreSIGPIPE
        self.eventLoop = eventLoop
        self.window = window
        self.received = received
        self.outputsClosed = outputsClosed
        descriptors = (stdin, stdout, stderr)
    }

    /// Registers the pipes on `eventLoop` (a descriptor that cannot be registered is closed, and
    /// its stream counts as ended).
    func start() {
        eventLoop.execute { [self] in
            let stdin = descriptors.stdin
            let input = NIOPipeBootstrap(group: eventLoop).takingOwnershipOfDescriptor(output: stdin)
            input.whenFailure { _ in _ = Glibc.close(stdin) }
            self.input = input
            for (descriptor, stream) in [(descriptors.stdout, SessionOutputStream.stdout), (descriptors.stderr, .stderr)] {
                let reader = DirectPipeReader(stream: stream, pipes: self)
                readers.append(reader)
                NIOPipeBootstrap(group: eventLoop)
                    .channelOption(.autoRead, value: false)
                    .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 18))
                    .channelOption(.maxMessagesPerRead, value: 8)
                    .channelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(reader) }
                    }
                    .takingOwnershipOfDescriptor(input: descriptor)
                    .whenFailure { [self] _ in
                        _ = Glibc.close(descriptor)
                        outputEnded()
                    }
            }
        }
    }

    // MARK: Output (on eventLoop)

    fileprivate var hasRoom: Bool { !closed && outstanding < window }

    fileprivate func read(_ data: ByteBuffer, _ stream: SessionOutputStream) {
        outstanding += data.readableBytes
        received(data, stream)
    }

    fileprivate func outputEnded() {
        openOutputs -= 1
        if openOutputs == 0 { outputsClosed() }
    }

    /// Output the client has taken: reading goes on if it had stopped.
    func consumed(_ bytes: Int) {
        eventLoop.execute { [self] in
            outstanding -= bytes
            guard hasRoom else { return }
            for reader in readers { reader.resume() }
        }
    }

    // MARK: Input

    /// Writes stdin; `done` runs on `eventLoop` once the bytes are in the pipe or were dropped
    /// (a program that closed its stdin drops the rest, as through the agent).
    func write(_ data: ByteBuffer, done: @escaping @Sendable () -> Void) {
        eventLoop.execute { [self] in
            guard let input, !inputEnding else { return done() }
            pendingWrites += 1
            input.whenComplete { [self] result in
                guard case .success(let channel) = result else {
                    wrote()
                    return done()
                }
                channel.writeAndFlush(data).whenComplete { [self] _ in
                    wrote()
                    done()
                }
            }
        }
    }

    private func wrote() {
        pendingWrites -= 1
        if pendingWrites == 0 && inputEnding { input?.whenSuccess { $0.close(promise: nil) } }
    }

    /// stdin's EOF, once what was written before is in the pipe (closing at once would drop it).
    func closeInput() {
        eventLoop.execute { [self] in
            guard !inputEnding else { return }
            inputEnding = true
            if pendingWrites == 0 { input?.whenSuccess { $0.close(promise: nil) } }
        }
    }

    /// The channel is finished: nothing more is read or written.
    func close() {
        eventLoop.execute { [self] in
            closed = true
            inputEnding = true
            for reader in readers { reader.close() }
            input?.whenSuccess { $0.close(promise: nil) }
        }
    }
}

/// Reads one output pipe while `DirectPipes` has room; EOF (or an error) ends that stream.
///
/// What one wake-up reads goes on as one piece. A program that writes a stream in small pieces
/// (busybox writes 4 KiB at a time) would otherwise cost a wake-up, an SSH packet and a socket
/// write per piece, so after a small read the next one waits `gatherDelay` and the pipe fills
/// meanwhile; a full read goes on at once. A reply of a request/response protocol is still read
/// the moment it arrives (the wait only follows a read), so only bytes that come within the
/// delay of the previous ones wait, and at most that long.
private final class DirectPipeReader: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let stream: SessionOutputStream
    /// Weak: the pipes hold their readers, and outlive them only while a channel closes.
    private weak var pipes: DirectPipes?
    private var context: ChannelHandlerContext?
    private var paused = false
    private var ended = false
    private var gathered: ByteBuffer?
    private var rearmScheduled = false

    static let smallRead = 32 * 1024
    static let gatherDelay = TimeAmount.microseconds(200)

    init(stream: SessionOutputStream, pipes: DirectPipes) {
        self.stream = stream
        self.pipes = pipes
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelActive(context: ChannelHandlerContext) {
        context.read()
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var data = unwrapInboundIn(data)
        if gathered == nil { gathered = data } else { gathered!.writeBuffer(&data) }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let size = gathered?.readableBytes ?? 0
        deliver()
        guard pipes?.hasRoom ?? false else {
            paused = true
            return
        }
        if size < Self.smallRead {
            rearmScheduled = true
            context.eventLoop.scheduleTask(in: Self.gatherDelay) { [self] in
                rearmScheduled = false
                guard let context = self.context else { return }
                if pipes?.hasRoom ?? false { context.read() } else { paused = true }
            }
        } else {
            context.read()
        }
    }

    private func deliver() {
        guard let data = gathered else { return }
        gathered = nil
        pipes?.read(data, stream)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deliver()
        self.context = nil
        if !ended {
            ended = true
            pipes?.outputEnded()
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func resume() {
        guard paused, !rearmScheduled, let context else { return }
        paused = false
        context.read()
    }

    func close() { context?.close(promise: nil) }
}
