import BerthCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import BerthSSHEngine

/// The SSH listener: accepts TCP connections, runs the SSH protocol with Berth's engine and
/// drives the outermost layer of the handler stack. Nothing of the engine leaks past here
/// (docs/architecture.md).
public final class SSHFrontEnd: Sendable {
    private let settings: SSHFrontEndSettings
    private let handler: any ServerHandler
    private let logger: Logger
    private let group: EventLoopGroup
    private let limiter: ConnectionLimiter
    private let loginGuard: LoginGuard
    private let descriptors: DescriptorReserve
    private let state = NIOLockedValueBox(ListenerState())

    private struct ListenerState {
        var serverChannel: Channel?
        var connections: [ObjectIdentifier: SSHConnection] = [:]
        var stopping = false
    }

    public init(settings: SSHFrontEndSettings, handler: any ServerHandler, logger: Logger, group: EventLoopGroup) {
        self.settings = settings
        self.handler = handler
        self.logger = logger
        self.group = group
        self.loginGuard = LoginGuard(config: settings.loginProtection)
        self.descriptors = DescriptorReserve(reserve: settings.descriptorReserve)
        self.limiter = ConnectionLimiter(
            maxTotal: settings.maxConnections, maxPerIP: settings.maxConnectionsPerIP, startups: settings.maxStartups, perSource: settings.perSourceStartups)
    }

    /// Binds the listener and tells the layers it is ready. Returns the bound address.
    @discardableResult
    public func start() async throws -> SocketAddress {
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // tcpOption, not socketOption: at SOL_SOCKET level this number is SO_DEBUG, which only
            // CAP_NET_ADMIN may set, so a Berth without it (its image, a pod) dropped every connection.
            .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in self.accept(channel) }
        let channel: Channel
        do {
            channel = try await bootstrap.bind(host: settings.host, port: settings.port).get()
        } catch {
            throw BerthError("SSH_LISTEN_FAILED", "cannot listen on \(settings.host):\(settings.port): \(error)")
        }
        state.withLockedValue { $0.serverChannel = channel }
        try await handler.onReady()
        let address = channel.localAddress!
        logger.log(.notice, "SSH_LISTENING", "listening for SSH connections", ["address": "\(address.ipAddress ?? settings.host):\(address.port ?? settings.port)"])
        return address
    }

    /// Resolves when the listener has closed.
    public func waitUntilClosed() async {
        let channel = state.withLockedValue { $0.serverChannel }
        try? await channel?.closeFuture.get()
    }

    public var currentConnections: Int { limiter.current }

    /// Graceful stop: no new connections; the layers get until `deadline` to finish sessions,
    /// then whatever is still connected is closed.
    public func shutdown(deadline: ContinuousClock.Instant) async {
        let serverChannel = state.withLockedValue { state in
            state.stopping = true
            return state.serverChannel
        }
        try? await serverChannel?.close()
        logger.log(.notice, "SSH_SHUTDOWN", "stopped accepting connections; draining sessions")
        let layers = Task { await handler.onShutdown(deadline: deadline) }
        while ContinuousClock.now < deadline {
            let open = state.withLockedValue { Array($0.connections.values) }
            if open.isEmpty { break }
            for connection in open where !connection.hasOpenSessions {
                connection.channel.close(promise: nil)
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        await layers.value
        let remaining = state.withLockedValue { Array($0.connections.values) }
        for connection in remaining {
            try? await connection.channel.close()
        }
        // Containers are removed in the disconnect handlers; wait for them before exiting.
        for connection in remaining {
            try? await connection.finished.futureResult.get()
        }
    }

    private func accept(_ channel: Channel) -> EventLoopFuture<Void> {
        let ip = channel.remoteAddress?.ipAddress ?? "unknown"
        let remote = RemoteAddress(ip: ip, port: channel.remoteAddress?.port ?? 0)
        let stopping = state.withLockedValue { $0.stopping }
        if case .refuse(let open, let limit, let firstTime) = descriptors.decide() {
            BerthMetrics.descriptorReserveRefusal()
            if firstTime {
                logger.log(
                    .warning, "SSH_DESCRIPTOR_RESERVE",
                    "closing new connections: \(open) of \(limit) descriptors are open and \(settings.descriptorReserve) are kept for users already logged in (ssh.descriptorReserve); raise the open-files limit",
                    [LogKey.remoteAddress: "\(remote)"])
            }
            channel.close(promise: nil)
            return channel.eventLoop.makeSucceededVoidFuture()
        }
        if !stopping, let refusals = loginGuard.refusesConnection(from: ip) {
            // A blocked scanner may reconnect thousands of times; the first one is news.
            logger.log(
                refusals == 1 ? .notice : .debug, "SSH_LOGIN_BLOCKED", "connection closed before key exchange: too many failed passwords from this address",
                [LogKey.remoteAddress: "\(remote)"])
            return refuse(channel, reason: "too many failed logins from your address; try again later")
        }
        if let refusal = stopping ? "server is shutting down" : limiter.acquire(ip: ip) {
            logger.log(.warning, "SSH_CONNECTION_REFUSED", "connection refused: \(refusal)", [LogKey.remoteAddress: "\(remote)"])
            return refuse(channel, reason: refusal)
        }
        let startup = limiter.startupSlot(ip: ip)
        let connection = SSHConnection(
            channel: channel, remoteAddress: remote, settings: settings, logger: logger,
            loginGuard: loginGuard, onAuthenticated: { startup.settle() })
        let key = ObjectIdentifier(connection)
        state.withLockedValue { $0.connections[key] = connection }
        connection.logger.log(.debug, "SSH_CONNECTED", "client connected")
        connection.networkHandler.completeWithTask { [handler] in
            try await handler.onNetworkConnection(connection.metadata())
        }
        connection.networkHandler.futureResult.whenFailure { error in
            connection.logger.log(.warning, "SSH_CONNECTION_REJECTED", "connection rejected: \(error)")
            channel.close(promise: nil)
        }
        let timers = ConnectionTimers(connection: connection)
        channel.closeFuture.whenComplete { [self] _ in
            timers.cancel()
            startup.settle()
            limiter.release(ip: ip)
            Task {
                await connection.closed()
                connection.logger.log(.debug, "SSH_DISCONNECTED", "client disconnected")
                state.withLockedValue { _ = $0.connections.removeValue(forKey: key) }
            }
        }
        return channel.eventLoop.makeCompletedFuture {
            try configurePipeline(channel, connection: connection, timers: timers)
        }
    }

    private func configurePipeline(_ channel: Channel, connection: SSHConnection, timers: ConnectionTimers) throws {
        let delegate = ConnectionDelegate(connection: connection)
        let engine = SSHServerHandler(settings: settings.engine, delegate: delegate)
        delegate.engine = engine
        let sync = channel.pipeline.syncOperations
        if settings.idleTimeout.nanoseconds > 0 {
            try sync.addHandler(IdleStateHandler(allTimeout: .nanoseconds(settings.idleTimeout.nanoseconds)))
            try sync.addHandler(IdleConnectionCloser(logger: connection.logger))
        }
        try sync.addHandler(engine)
        timers.start(engine: NIOLoopBound(WeakEngine(engine), eventLoop: channel.eventLoop))
    }

    /// Before the SSH version exchange the only way to explain a refusal is a plain text line
    /// (RFC 4253 §4.2 lets servers send lines before their identification).
    private func refuse(_ channel: Channel, reason: String) -> EventLoopFuture<Void> {
        let line = channel.allocator.buffer(string: "Berth: \(reason)\r\n")
        channel.writeAndFlush(line).whenComplete { _ in channel.close(promise: nil) }
        return channel.eventLoop.makeSucceededVoidFuture()
    }
}
