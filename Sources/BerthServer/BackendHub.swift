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

    public init(config: BerthConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        docker = config.backend == "docker" ? try DockerBackend(config: config.docker, logger: logger) : nil
    }

    public func onReady() async throws {
        await docker?.removeOrphans()
    }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        BackendConnection(config: config, docker: docker, logger: logger.forConnection(metadata))
    }

    public func onShutdown(deadline: ContinuousClock.Instant) async {}
}

final class BackendConnection: NetworkConnectionHandler {
    private let config: BerthConfig
    private let docker: DockerBackend?
    private let logger: Logger
    private let dockerConnection = NIOLockedValueBox<DockerConnection?>(nil)

    init(config: BerthConfig, docker: DockerBackend?, logger: Logger) {
        self.config = config
        self.docker = docker
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
        await dockerConnection.withLockedValue { $0 }?.tearDown()
    }
}
