import BerthAgentProtocol
import BerthCore
import CPidfd
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import NIOCore
import NIOPosix

/// The agent's process, held as a pidfd that the kernel gives for the socket link's peer
/// (`SO_PEERPIDFD`), from which Berth takes a program's stdin pipe end (docs/agent-protocol.md,
/// "Direct pipes"). The pidfd names the process that listened, not a PID number: a listener that
/// has exited gives none (a number could by then belong to another process). Every end taken is
/// still checked against the pipe inode the agent reported.
final class AgentPeerProcess: Sendable {
    private let pidfd: Int32

    private init(pidfd: Int32) { self.pidfd = pidfd }

    deinit { _ = Glibc.close(pidfd) }

    /// SO_PEERPIDFD (Linux 6.5), not in the Glibc module.
    private static let peerPIDFD: Int32 = 77

    /// The agent at the other end of a connected unix socket, if Berth may take descriptors from
    /// it: nil before Linux 6.5, when the listener is gone, or without ptrace rights over it
    /// (root with CAP_SYS_PTRACE has them; the packaged service's `berth` user has not). Then
    /// programs are never offered direct pipes and `AGENT_LINK_UP` says `pipes=link`.
    static func of(_ channel: any Channel) async -> AgentPeerProcess? {
        guard let provider = channel as? any SocketOptionProvider,
            let pidfd: Int32 = try? await provider.unsafeGetSocketOption(level: .init(SOL_SOCKET), name: .init(peerPIDFD)).get(),
            pidfd >= 0
        else { return nil }
        let peer = AgentPeerProcess(pidfd: pidfd)
        // The permission check comes before the descriptor lookup: EBADF means allowed.
        let probe = berth_pidfd_getfd(pidfd, 0)
        if probe >= 0 {
            _ = Glibc.close(probe)
            return peer
        }
        return errno == EBADF ? peer : nil
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
}

/// A program's stdin pipe held by Berth: the client's bytes are written straight into it on the
/// SSH channel's event loop. (Output stays with the agent, which reads a program's small writes on
/// its own thread and hands Berth large batches: read directly, a stream of 4 KiB writes cost Berth
/// a wake-up, a packet and a socket write each, and 20 parallel streams ran at half the speed;
/// bench/README.md, "Results on 2026-12-05".) All state is confined to `eventLoop`.
final class DirectInput: @unchecked Sendable {
    let eventLoop: any EventLoop
    private let descriptor: Int32
    private var input: EventLoopFuture<any Channel>?
    private var pendingWrites = 0
    private var ending = false

    private static let ignoreSIGPIPE: Void = {
        // Linux raises SIGPIPE on a write to a pipe whose reader is gone (a program that closed its
        // stdin); NIO avoids it only for sockets. The write then fails with EPIPE instead.
        _ = signal(SIGPIPE, SIG_IGN)
    }()

    /// Takes ownership of `descriptor` (closed with the pipe, or at once if it cannot be
    /// registered); nothing is written before `start`.
    init(descriptor: Int32, eventLoop: any EventLoop) {
        _ = Self.ignoreSIGPIPE
        self.descriptor = descriptor
        self.eventLoop = eventLoop
    }

    func start() {
        eventLoop.execute { [self] in
            let descriptor = self.descriptor
            let input = NIOPipeBootstrap(group: eventLoop).takingOwnershipOfDescriptor(output: descriptor)
            input.whenFailure { _ in _ = Glibc.close(descriptor) }
            self.input = input
        }
    }

    /// Writes stdin; `done` runs on `eventLoop` once the bytes are in the pipe or were dropped
    /// (a program that closed its stdin drops the rest, as through the agent).
    func write(_ data: ByteBuffer, done: @escaping @Sendable () -> Void) {
        eventLoop.execute { [self] in
            guard let input, !ending else { return done() }
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
        if pendingWrites == 0 && ending { input?.whenSuccess { $0.close(promise: nil) } }
    }

    /// The session is over: the pipe closes at once, and writes still waiting fail. (The graceful
    /// `close` could wait for ever on a pipe that a process outside the program keeps open and
    /// never reads.)
    func abort() {
        eventLoop.execute { [self] in
            ending = true
            input?.whenSuccess { $0.close(promise: nil) }
        }
    }

    /// stdin's EOF, once what was written before is in the pipe (closing at once would drop it).
    func close() {
        eventLoop.execute { [self] in
            guard !ending else { return }
            ending = true
            if pendingWrites == 0 { input?.whenSuccess { $0.close(promise: nil) } }
        }
    }
}
