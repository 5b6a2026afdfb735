import BerthConfig
import BerthCore
import Logging

/// The innermost layer of the stack: for each authenticated connection, picks the backend the
/// (merged) configuration names and hands the connection to it.
public struct BackendHub: ServerHandler {
    private let config: BerthConfig
    private let logger: Logger

    public init(config: BerthConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    public func onReady() async throws {}

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        BackendConnection(config: config, logger: logger.forConnection(metadata))
    }

    public func onShutdown(deadline: ContinuousClock.Instant) async {}
}

struct BackendConnection: NetworkConnectionHandler {
    let config: BerthConfig
    let logger: Logger

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
        default:
            logger.log(.warning, "BACKEND_NOT_AVAILABLE", "backend \(config.backend) is not available in this build", ["backend": "\(config.backend)"])
            return UnavailableBackendConnection(backend: config.backend)
        }
    }

    func onDisconnect() async {}
}
