import BerthAuth
import BerthConfig
import BerthCore
import BerthDocker
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
        shared = SharedBackends(
            config: config, raw: raw,
            docker: config.backend == "docker" ? try DockerBackend(config: config.docker, logger: logger, pooled: true) : nil,
            configWebhook: config.configserver.http.url.isEmpty ? nil : try ConfigWebhookClient(config: config.configserver, logger: logger)
        )
    }

    private var docker: DockerBackend? { shared.docker }
    private var live: LiveDockerConnections { shared.live }

    public func onReady() async throws {
        await docker?.removeOrphans()
        await docker?.startPool()
    }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        BackendConnection(shared: shared, logger: logger.forConnection(metadata))
    }

    public func close() async {
        await docker?.stopPool()
        await shared.configWebhook?.shutdown()
    }

    /// Graceful stop: sessions may finish on their own first; shortly before the deadline the
    /// programs still running get TERM (SPEC §5), and at the deadline the front end closes what
    /// is left, whose disconnects remove the containers.
    public func onShutdown(deadline: ContinuousClock.Instant) async {
        let remaining = deadline - .now
        let termAt = deadline - min(.seconds(5), remaining / 2)
        while !live.all.isEmpty, ContinuousClock.now < termAt {
            try? await Task.sleep(for: .milliseconds(100))
        }
        for connection in live.all { await connection.terminatePrograms() }
        while live.all.contains(where: { !$0.isTornDown }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// What every connection of the hub uses: the static configuration and the clients built from it.
struct SharedBackends: Sendable {
    let config: BerthConfig
    let raw: ConfigValue
    let docker: DockerBackend?
    let configWebhook: ConfigWebhookClient?
    let live = LiveDockerConnections()
}

final class BackendConnection: NetworkConnectionHandler {
    private let shared: SharedBackends
    private let logger: Logger
    private let dockerConnection = NIOLockedValueBox<DockerConnection?>(nil)
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

    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async {}

    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        let (config, metadata) = try await userConfiguration(metadata)
        let backend = try await backendHandler(config, metadata)
        return SecureSSHConnection(next: backend, config: config.security, logger: logger)
    }

    /// The static configuration, or the config webhook's answer merged over it and validated.
    /// Failing here closes the connection before anything is started.
    private func userConfiguration(_ metadata: ConnectionMetadata) async throws -> (BerthConfig, ConnectionMetadata) {
        guard let webhook = shared.configWebhook else { return (shared.config, metadata) }
        let reply: ConfigWebhookClient.Reply
        do {
            reply = try await webhook.fetch(metadata)
        } catch {
            logger.log(.error, "CONFIG_WEBHOOK_UNAVAILABLE", "config server unavailable: \((error as? CodedError)?.message ?? "\(error)")", [LogKey.username: "\(metadata.username)"])
            throw error
        }
        do {
            let (config, _) = try ConfigReader.read(shared.raw.merging(reply.config))
            logger.log(.debug, "CONFIG_WEBHOOK_APPLIED", "per-user configuration applied", ["backend": "\(config.backend)"])
            return (config, metadata.merging(reply.update))
        } catch {
            logger.log(.error, "CONFIG_INVALID", "the config server's answer makes an invalid configuration: \(error)", [LogKey.username: "\(metadata.username)"])
            throw error
        }
    }

    private func backendHandler(_ config: BerthConfig, _ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        switch config.backend {
        case "echo":
            return EchoBackendConnection(metadata: metadata)
        case "docker":
            do {
                let docker = try shared.docker.flatMap { config.docker == shared.config.docker ? $0 : nil }
                    ?? DockerBackend(config: config.docker, logger: logger)
                let connection = try await docker.connect(metadata, logger: logger)
                dockerConnection.withLockedValue { $0 = connection }
                shared.live.add(connection)
                return connection
            } catch {
                let reason = (error as? CodedError)?.message ?? "\(error)"
                logger.log(.error, (error as? CodedError)?.code ?? "DOCKER_ERROR", "cannot start the user's container: \(reason)", [LogKey.username: "\(metadata.username)"])
                // The user is already authenticated; tell them in one line instead of hanging up silently.
                return UnavailableBackendConnection(message: "cannot start your container: \(reason)")
            }
        case "sshproxy":
            do {
                let connection = try await SSHProxyBackend(config: config.sshproxy).connect(metadata, logger: logger)
                proxyConnection.withLockedValue { $0 = connection }
                return connection
            } catch {
                let reason = (error as? CodedError)?.message ?? "\(error)"
                logger.log(.error, (error as? CodedError)?.code ?? "SSHPROXY_ERROR", reason, [LogKey.username: "\(metadata.username)"])
                return UnavailableBackendConnection(message: reason)
            }
        default:
            logger.log(.warning, "BACKEND_NOT_AVAILABLE", "backend \(config.backend) is not available in this build", ["backend": "\(config.backend)"])
            return UnavailableBackendConnection(message: "the \(config.backend) backend is not available in this build")
        }
    }

    func onDisconnect() async {
        await proxyConnection.withLockedValue({ $0 })?.tearDown()
        guard let connection = dockerConnection.withLockedValue({ $0 }) else { return }
        await connection.tearDown()
        shared.live.remove(connection)
    }
}

/// The Docker connections currently open, for graceful shutdown.
final class LiveDockerConnections: Sendable {
    private let connections = NIOLockedValueBox<[ObjectIdentifier: DockerConnection]>([:])

    var all: [DockerConnection] { connections.withLockedValue { Array($0.values) } }
    func add(_ connection: DockerConnection) { connections.withLockedValue { $0[ObjectIdentifier(connection)] = connection } }
    func remove(_ connection: DockerConnection) { connections.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(connection)) } }
}
