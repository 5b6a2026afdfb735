import BerthAuth
import BerthConfig
import BerthCore
import BerthDocker
import BerthKubernetes
import BerthSecurity
import BerthSSHProxy
import Logging
import NIOConcurrencyHelpers

/// The config, security and backend layers: for each authenticated connection, fetches the
/// user's configuration from the config webhook (if any), merges it over the static one, and
/// hands the connection to the backend it names behind the security policy.
public final class BackendHub: ServerHandler {
    private let shared: SharedBackends
    private let logger: Logger

    public init(config: BerthConfig, raw: ConfigValue, logger: Logger) throws {
        self.logger = logger
        let identity = ServerIdentity(listen: config.ssh.listen, configured: config.persistence.serverIdentity)
        shared = SharedBackends(
            config: config, raw: raw, identity: identity,
            docker: config.backend == "docker"
                ? try DockerBackend(
                    config: config.docker, identity: identity, persistence: config.persistence,
                    maxSessions: config.security.maxSessions < 0 ? nil : config.security.maxSessions, logger: logger, pooled: true) : nil,
            kubernetes: config.backend == "kubernetes"
                ? try KubernetesBackend(
                    config: config.kubernetes, identity: identity, persistence: config.persistence,
                    maxSessions: config.security.maxSessions < 0 ? nil : config.security.maxSessions, logger: logger)
                : nil,
            configWebhook: config.configserver.http.url.isEmpty ? nil : try ConfigWebhookClient(config: config.configserver, logger: logger)
        )
    }

    private var docker: DockerBackend? { shared.docker }
    private var live: LiveConnections { shared.live }

    public func onReady() async throws {
        try await docker?.start()
        await shared.kubernetes?.removeOrphans()
    }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        BackendConnection(shared: shared, logger: logger.forConnection(metadata))
    }

    public func close() async {
        await docker?.stop()
        await shared.kubernetes?.shutdown()
        await shared.configWebhook?.shutdown()
    }

    /// Graceful stop: sessions may finish on their own first; shortly before the deadline the
    /// programs still running get TERM (docs/configuration.md, "docker"), and at the deadline the front end closes what
    /// is left, whose disconnects remove the containers.
    public func onShutdown(deadline: ContinuousClock.Instant) async {
        let remaining = deadline - .now
        let termAt = deadline - min(.seconds(5), remaining / 2)
        await live.waitUntilEmpty(orUntil: termAt)
        for connection in live.all { await connection.terminatePrograms() }
        await live.waitUntilEmpty(orUntil: deadline)
    }
}

/// What every connection of the hub uses: the static configuration and the clients built from it.
struct SharedBackends: Sendable {
    let config: BerthConfig
    let raw: ConfigValue
    let identity: ServerIdentity
    let docker: DockerBackend?
    let kubernetes: KubernetesBackend?
    let configWebhook: ConfigWebhookClient?
    let live = LiveConnections()

    /// What the config webhook's answers may change; capabilities the file's own HostConfig adds
    /// count as ordinary.
    var webhookPolicy: ConfigWebhookPolicy {
        ConfigWebhookPolicy(allow: config.configserver.allow, ordinaryCapabilities: DockerBackend.ordinaryCapabilities(config.docker))
    }
}

final class BackendConnection: NetworkConnectionHandler {
    private let shared: SharedBackends
    private let logger: Logger
    private let ownerConnection = NIOLockedValueBox<(any ContainerOwner)?>(nil)
    private let proxyConnection = NIOLockedValueBox<SSHProxyConnection?>(nil)

    init(shared: SharedBackends, logger: Logger) {
        self.shared = shared
        self.logger = logger
    }

    // Credentials are the auth layer's business; reaching here means no auth layer answered.
    func onAuthPassword(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        .unavailable(reason: "no authentication layer")
    }

    func onAuthPublicKey(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        .unavailable(reason: "no authentication layer")
    }

    func onAuthSecondFactor(_ metadata: ConnectionMetadata, code: String) async -> AuthOutcome {
        .unavailable(reason: "no authentication layer")
    }

    func onAuthKeyboardInteractive(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        .unavailable(reason: "no authentication layer")
    }

    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async {}

    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        let (config, metadata) = try await userConfiguration(metadata)
        let backend = try await backendHandler(config, metadata)
        ConnectionContext.placement?.set(backend: config.backend, container: ownerConnection.withLockedValue { $0 }?.servingContainer)
        return SecureSSHConnection(next: backend, config: config.security, restrictions: metadata.restrictions, logger: logger)
    }

    /// The static configuration, or the config webhook's answer merged over it and validated.
    /// Failing here closes the connection before anything is started.
    private func userConfiguration(_ metadata: ConnectionMetadata) async throws -> (BerthConfig, ConnectionMetadata) {
        guard let webhook = shared.configWebhook else { return (shared.config, metadata) }
        let reply: ConfigWebhookClient.Reply
        do {
            reply = try await webhook.fetch(metadata)
        } catch {
            logger.log(
                .error, "CONFIG_WEBHOOK_UNAVAILABLE", "config server unavailable: \((error as? CodedError)?.message ?? "\(error)")",
                [LogKey.username: "\(metadata.effectiveUsername)"])
            throw error
        }
        let config: BerthConfig
        do {
            (config, _) = try ConfigReader.read(shared.raw.merging(reply.config))
        } catch {
            logger.log(.error, "CONFIG_INVALID", "the config server's answer makes an invalid configuration: \(error)", [LogKey.username: "\(metadata.effectiveUsername)"])
            throw error
        }
        let refusals = shared.webhookPolicy.refusals(answer: reply.config, base: shared.config, merged: config)
        if let first = refusals.first {
            let error = BerthError("CONFIG_WEBHOOK_POLICY_REFUSED", "the config server's answer sets \(refusals.map(\.description).joined(separator: ", "))")
            logger.log(.error, error.code, error.message, [LogKey.username: "\(metadata.effectiveUsername)", "key": "\(first.path)"])
            throw error
        }
        logger.log(.debug, "CONFIG_WEBHOOK_APPLIED", "per-user configuration applied", ["backend": "\(config.backend)"])
        return (config, metadata.merging(reply.update))
    }

    private func backendHandler(_ config: BerthConfig, _ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        switch config.backend {
        case "echo":
            return EchoBackendConnection(metadata: metadata)
        case "docker":
            do {
                let docker =
                    try shared.docker.flatMap { config.docker == shared.config.docker ? $0 : nil }
                    ?? DockerBackend(
                        config: config.docker, identity: shared.identity, persistence: config.persistence,
                        maxSessions: config.security.maxSessions < 0 ? nil : config.security.maxSessions, logger: logger)
                return own(try await docker.connect(metadata, logger: logger))
            } catch {
                return unavailable(error, metadata, fallbackCode: "DOCKER_ERROR", what: "container")
            }
        case "kubernetes":
            do {
                if let kubernetes = shared.kubernetes, config.kubernetes == shared.config.kubernetes, config.persistence == shared.config.persistence,
                    config.security.maxSessions == shared.config.security.maxSessions
                {
                    return own(try await kubernetes.connect(metadata, logger: logger))
                }
                // The config webhook gave this user a Kubernetes setup of their own.
                return own(
                    try await KubernetesBackend(
                        config: config.kubernetes, identity: shared.identity, persistence: config.persistence,
                        maxSessions: config.security.maxSessions < 0 ? nil : config.security.maxSessions, logger: logger
                    ).connect(metadata, logger: logger, ownsBackend: true))
            } catch {
                return unavailable(error, metadata, fallbackCode: "KUBERNETES_ERROR", what: "pod")
            }
        case "sshproxy":
            do {
                let connection = try await SSHProxyBackend(config: config.sshproxy).connect(metadata, logger: logger)
                proxyConnection.withLockedValue { $0 = connection }
                return connection
            } catch {
                // The upstream's address and its errors are the operator's business, as engine text is.
                return unavailable(error, metadata, fallbackCode: "SSHPROXY_ERROR", what: "session upstream")
            }
        default:
            logger.log(.warning, "BACKEND_NOT_AVAILABLE", "backend \(config.backend) is not available in this build", ["backend": "\(config.backend)"])
            return UnavailableBackendConnection(message: "the \(config.backend) backend is not available in this build")
        }
    }

    /// Remembers a connection that owns containers, for its removal and for graceful stop.
    private func own<Connection: ContainerOwner & SSHConnectionHandler>(_ connection: Connection) -> Connection {
        ownerConnection.withLockedValue { $0 = connection }
        shared.live.add(connection)
        return connection
    }

    /// The user is already authenticated; tell them in one line instead of hanging up silently,
    /// without the engine's text (`UserNotice`).
    private func unavailable(_ error: Error, _ metadata: ConnectionMetadata, fallbackCode: MessageCode, what: String) -> any SSHConnectionHandler {
        let reason = (error as? CodedError)?.message ?? "\(error)"
        let code = (error as? CodedError)?.code ?? fallbackCode
        logger.log(.error, code, "cannot start the user's \(what): \(reason)", [LogKey.username: "\(metadata.effectiveUsername)"])
        return UnavailableBackendConnection(line: UserNotice.line("cannot start your \(what); the server's log has the reason", code: code, logger: logger))
    }

    func onDisconnect() async {
        await proxyConnection.withLockedValue({ $0 })?.tearDown()
        guard let connection = ownerConnection.withLockedValue({ $0 }) else { return }
        await connection.tearDown()
        shared.live.remove(connection)
    }
}

/// The connections that own containers or pods, for graceful shutdown.
final class LiveConnections: Sendable {
    private struct State {
        var connections: [ObjectIdentifier: any ContainerOwner] = [:]
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    var all: [any ContainerOwner] { state.withLockedValue { Array($0.connections.values) } }
    func add(_ connection: any ContainerOwner) { state.withLockedValue { $0.connections[ObjectIdentifier(connection)] = connection } }

    /// Called once a connection has removed what it owns; the last one wakes the graceful stop.
    func remove(_ connection: any ContainerOwner) {
        let woken = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.connections.removeValue(forKey: ObjectIdentifier(connection))
            guard state.connections.isEmpty else { return [] }
            defer { state.waiters = [:] }
            return Array(state.waiters.values)
        }
        for waiter in woken { waiter.resume() }
    }

    /// Returns once no connection owns anything any more, or at `deadline`.
    func waitUntilEmpty(orUntil deadline: ContinuousClock.Instant) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.emptied() }
            group.addTask { try? await Task.sleep(until: deadline) }
            await group.next()
            group.cancelAll()
        }
    }

    private func emptied() async {
        let id = state.withLockedValue { state -> UInt64 in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLockedValue { state -> Bool in
                    if state.connections.isEmpty || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLockedValue { $0.waiters.removeValue(forKey: id) }?.resume()
        }
    }
}
