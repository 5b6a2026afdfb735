import BerthConfig
import BerthCore
import BerthDocker
import Logging
import NIOConcurrencyHelpers

/// The innermost layer of the stack: for each authenticated connection, picks the backend the
/// configuration names and hands the connection to it.
public final class BackendHub: ServerHandler {
    private let config: BerthConfig
    private let logger: Logger
    private let docker: DockerBackend?
    private let live = LiveDockerConnections()

    public init(config: BerthConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        docker = config.backend == "docker" ? try DockerBackend(config: config.docker, logger: logger) : nil
    }

    public func onReady() async throws {
        await docker?.removeOrphans()
    }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        BackendConnection(config: config, docker: docker, live: live, logger: logger.forConnection(metadata))
    }

    /// SPEC §5: TERM to running programs, then wait for the sessions to end until the deadline;
    /// the front end closes whatever is left and the disconnects remove the containers.
    public func onShutdown(deadline: ContinuousClock.Instant) async {
        let connections = live.all
        for connection in connections { await connection.terminatePrograms() }
        while live.all.contains(where: { !$0.isTornDown }), ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
    }
}

final class BackendConnection: NetworkConnectionHandler {
    private let config: BerthConfig
    private let docker: DockerBackend?
    private let logger: Logger
    private let dockerConnection = NIOLockedValueBox<DockerConnection?>(nil)
    private let live: LiveDockerConnections

    init(config: BerthConfig, docker: DockerBackend?, live: LiveDockerConnections, logger: Logger) {
        self.config = config
        self.docker = docker
        self.live = live
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
        switch config.backend {
        case "echo":
            return EchoBackendConnection(metadata: metadata)
        case "docker":
            guard let docker else { return UnavailableBackendConnection(message: "the docker backend is not configured") }
            do {
                let connection = try await docker.connect(metadata, logger: logger)
                dockerConnection.withLockedValue { $0 = connection }
                live.add(connection)
                return connection
            } catch {
                let reason = (error as? CodedError)?.message ?? "\(error)"
                logger.log(.error, (error as? CodedError)?.code ?? "DOCKER_ERROR", "cannot start the user's container: \(reason)", [LogKey.username: "\(metadata.username)"])
                // The user is already authenticated; tell them in one line instead of hanging up silently.
                return UnavailableBackendConnection(message: "cannot start your container: \(reason)")
            }
        default:
            logger.log(.warning, "BACKEND_NOT_AVAILABLE", "backend \(config.backend) is not available in this build", ["backend": "\(config.backend)"])
            return UnavailableBackendConnection(message: "the \(config.backend) backend is not available in this build")
        }
    }

    func onDisconnect() async {
        guard let connection = dockerConnection.withLockedValue({ $0 }) else { return }
        await connection.tearDown()
        live.remove(connection)
    }
}

/// The Docker connections currently open, for graceful shutdown.
final class LiveDockerConnections: Sendable {
    private let connections = NIOLockedValueBox<[ObjectIdentifier: DockerConnection]>([:])

    var all: [DockerConnection] { connections.withLockedValue { Array($0.values) } }
    func add(_ connection: DockerConnection) { connections.withLockedValue { $0[ObjectIdentifier(connection)] = connection } }
    func remove(_ connection: DockerConnection) { connections.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(connection)) } }
}
