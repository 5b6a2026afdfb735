import BerthCore
import BerthForwarding
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

extension AgentLink {
    /// The socket link: connects to the agent's unix socket (bind-mounted from the host),
    /// retrying while the agent is still starting, until `timeout`.
    public static func connectSocket(path: String, secret: [UInt8], timeout: Duration, logger: Logger) async throws -> AgentLink {
        try await retryingConnect(timeout: timeout, unreachable: "cannot connect to the agent's socket \(path)") { remaining in
            try await connectOnce(kind: "socket", secret: secret, timeout: remaining, logger: logger) { bootstrap in
                try await withConnectablePath(path) { try await bootstrap.connect(unixDomainSocketPath: $0).get() }
            }
        }
    }

    /// The TCP link: the agent of a pod listening on the pod's IP (`serve --listen`), for a
    /// Berth inside the cluster; the per-pod secret is all that keeps other pods out, so the
    /// agent takes only the first peer that proves it and then closes the port.
    public static func connectTCP(host: String, port: Int, secret: [UInt8], timeout: Duration, logger: Logger) async throws -> AgentLink {
        try await retryingConnect(timeout: timeout, unreachable: "cannot connect to the agent at \(host) port \(port)") { remaining in
            try await connectOnce(kind: "tcp", secret: secret, timeout: remaining, logger: logger) { bootstrap in
                try await bootstrap.channelOption(.tcpOption(.tcp_nodelay), value: 1).connect(host: host, port: port).get()
            }
        }
    }

    /// Retries `attempt` while the agent is still starting (it listens right after its container
    /// starts), until `timeout`; a refused hello (wrong secret, version) is final.
    private static func retryingConnect(
        timeout: Duration, unreachable: String, _ attempt: (_ remaining: Duration) async throws -> AgentLink
    ) async throws -> AgentLink {
        let deadline = ContinuousClock.now + timeout
        var lastError: Error = AgentLinkError("AGENT_SOCKET_UNREACHABLE", "no attempt made")
        var delay = Duration.milliseconds(5)
        while ContinuousClock.now < deadline {
            do {
                return try await attempt(max(.milliseconds(100), deadline - .now))
            } catch let error as AgentLinkError where error.code == "AGENT_LINK_REFUSED" || error.code == "AGENT_LINK_VERSION" {
                throw error
            } catch {
                lastError = error
            }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(100))
        }
        throw AgentLinkError("AGENT_SOCKET_UNREACHABLE", "\(unreachable): \(lastError)")
    }

    /// A unix address holds at most 107 bytes of path. A longer one (a deep `agentSocketRoot`) is
    /// reached through a descriptor of its directory: Linux resolves /proc/self/fd/N as that
    /// directory. `body` gets the path to connect to; the descriptor lives until it returns.
    static func withConnectablePath<T>(_ path: String, _ body: (String) async throws -> T) async throws -> T {
        guard path.utf8.count > 100, let slash = path.lastIndex(of: "/") else { return try await body(path) }
        let directory = String(path[..<slash])
        let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw AgentLinkError("AGENT_SOCKET_UNREACHABLE", "cannot open the link directory \(directory): \(String(cString: strerror(errno)))")
        }
        defer { closeDescriptor(descriptor) }
        return try await body("/proc/self/fd/\(descriptor)" + path[slash...])
    }

    private static func connectOnce(
        kind: String, secret: [UInt8], timeout: Duration, logger: Logger, _ connect: (ClientBootstrap) async throws -> any Channel
    ) async throws -> AgentLink {
        let box = NIOLockedValueBox<AgentLink?>(nil)
        // On the connection's event loop when there is one: the program's output then reaches
        // the SSH channel without changing threads (docs/architecture.md, "Data path").
        let bootstrap = ClientBootstrap(group: ConnectionContext.eventLoop ?? MultiThreadedEventLoopGroup.singleton.any())
            .channelOption(.socketOption(.so_sndbuf), value: 1 << 20)
            .channelOption(.socketOption(.so_rcvbuf), value: 1 << 20)
            .channelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 4096, initial: 65536, maximum: 1 << 20))
            .channelInitializer { channel in
                let writer = OrderedWriter(channel: channel)
                let link = AgentLink(
                    kind: kind,
                    io: AgentLinkIO(
                        send: { frame in writer.write(frame) },
                        close: { [channel] in try? await channel.close() }), logger: logger)
                box.withLockedValue { $0 = link }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(AgentLinkReader(link: link))
                }
            }
        let channel = try await connect(bootstrap)
        guard let link = box.withLockedValue({ $0 }) else {
            try? await channel.close()
            throw AgentLinkError("AGENT_SOCKET_UNREACHABLE", "the socket connection was not set up")
        }
        // Only a unix socket has a peer process whose pipe ends Berth could take.
        if kind == "socket" { link.setPeer(await AgentPeerProcess.of(channel)) }
        do {
            try await link.hello(secret: secret, timeout: timeout)
        } catch {
            try? await channel.close()
            if let error = error as? AgentLinkError, error.code == "AGENT_LINK_LOST", let reason = link.closedReason, reason.contains("AGENT_") {
                throw AgentLinkError("AGENT_LINK_REFUSED", reason)
            }
            throw error
        }
        return link
    }

    /// A link over an exec stream: `send` writes to the program's stdin (one writer task keeps
    /// the order), `pump` feeds its stdout to the link until it ends.
    public static func overStream(
        write: @escaping @Sendable (ByteBuffer) async throws -> Void, close: @escaping @Sendable () async -> Void,
        logger: Logger
    ) -> AgentLink {
        let (frames, queue) = AsyncStream.makeStream(of: ByteBuffer.self)
        let link = AgentLink(
            kind: "exec",
            io: AgentLinkIO(
                send: { frame in queue.yield(frame) },
                close: {
                    queue.finish()
                    await close()
                }), logger: logger)
        Task {
            for await frame in frames {
                do {
                    try await write(frame)
                } catch {
                    link.lost("cannot write to the agent: \(error)")
                    // Later sends are dropped instead of piling up unwritten.
                    queue.finish()
                    break
                }
            }
        }
        return link
    }
}

private func closeDescriptor(_ descriptor: Int32) { _ = close(descriptor) }

/// Writes frames in the order `write` was called, from any thread. A write from the channel's own
/// event loop goes out at once unless writes from other threads are still queued for the loop
/// (it would overtake them: the stdin of one program is sent from whichever thread gave credit).
private final class OrderedWriter: Sendable {
    private let channel: any Channel
    private let queued = NIOLockedValueBox(0)

    init(channel: any Channel) { self.channel = channel }

    func write(_ frame: ByteBuffer) {
        let inline = channel.eventLoop.inEventLoop && queued.withLockedValue { $0 == 0 }
        if inline {
            channel.writeAndFlush(frame, promise: nil)
            return
        }
        queued.withLockedValue { $0 += 1 }
        channel.eventLoop.execute { [channel, queued] in
            queued.withLockedValue { $0 -= 1 }
            channel.writeAndFlush(frame, promise: nil)
        }
    }
}

/// Feeds the socket's bytes to the link; the link's consumers are bounded by credit, so reads
/// never need holding back.
private final class AgentLinkReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let link: AgentLink

    init(link: AgentLink) { self.link = link }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        link.receive(unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        link.lost("the agent closed the link")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        link.lost("link error: \(error)")
        context.close(promise: nil)
    }
}

extension AgentLink {
    /// A forward-server on a forwarding channel of this link (docs/agent-protocol.md, "Forwarding"), for `ForwardRegistry`.
    public func startForwardServer(role: String, logger: Logger) async throws -> ForwardMultiplexer {
        let forward = try await openForward()
        var log = logger
        log[metadataKey: "forward"] = "\(role)"
        let multiplexer = ForwardMultiplexer(transport: forward, logger: log)
        let output = forward.output
        Task { await multiplexer.run(output) }
        return multiplexer
    }
}

extension AgentLink {
    /// The exec link: `agent serve --stdio` already started by the backend (`docker exec`, the
    /// Kubernetes WebSocket exec); its output is fed to the link, its stderr logged, and the
    /// handshake done before returning.
    public static func overExec<Stream: EngineProgramStream>(_ stream: Stream, helloTimeout: Duration, logger: Logger) async throws -> AgentLink {
        let link = overStream(
            write: { try await stream.write($0) },
            close: {
                await stream.closeInput()
                await stream.close()
            }, logger: logger)
        Task {
            do {
                for try await piece in stream.output {
                    switch piece.pumpPiece {
                    case .stdout(let bytes): link.receive(bytes)
                    case .stderr(let bytes): logger.log(.debug, "AGENT_LOG", String(buffer: bytes))
                    // A Kubernetes status: the exec ended, with the API server's reason if any.
                    case .note(let reason): link.lost("the agent's exec ended\(reason.isEmpty ? "" : ": \(reason)")")
                    }
                }
                link.lost("the agent's exec stream ended")
            } catch {
                link.lost("the agent's exec stream failed: \(error)")
            }
        }
        do {
            try await link.hello(secret: [], timeout: helloTimeout)
        } catch {
            await link.close()
            throw error
        }
        logger.log(.debug, "AGENT_LINK_UP", "linked to the agent", ["link": "exec"])
        return link
    }
}
