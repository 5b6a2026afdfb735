import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOCore

/// The Docker backend: one container per connection (`connection` mode) or per session
/// channel (`session` mode), removed when the user leaves.
public final class DockerBackend: Sendable {
    let client: DockerClient
    let config: DockerConfig
    let logger: Logger

    public init(config: DockerConfig, logger: Logger) throws {
        let endpoint = try DockerEndpoint(host: config.connection.host, cacert: config.connection.cacert, cert: config.connection.cert, key: config.connection.key)
        self.client = DockerClient(endpoint: endpoint, requestTimeout: config.timeouts.http.duration, logger: logger)
        self.config = config
        self.logger = logger
    }

    /// Crash hygiene (SPEC §5): at start-up no connection is live, so every container carrying
    /// Berth's connection label is left over from an earlier run.
    public func removeOrphans() async {
        do {
            let orphans = try await client.listContainers(label: DockerContainerSpec.connectionLabel)
            for orphan in orphans {
                try await client.removeContainer(orphan.id)
                logger.log(.notice, "DOCKER_ORPHAN_REMOVED", "removed a container left over from an earlier run", ["containerId": "\(orphan.id)", "connectionId": "\(orphan.labels[DockerContainerSpec.connectionLabel] ?? "")"])
            }
        } catch {
            logger.log(.warning, "DOCKER_ORPHAN_CLEANUP_FAILED", "could not look for left-over containers: \(error)")
        }
    }

    /// Prepares the user's environment after authentication.
    public func connect(_ metadata: ConnectionMetadata, logger: Logger) async throws -> DockerConnection {
        let connection = DockerConnection(backend: self, metadata: metadata, logger: logger)
        if config.execution.mode == .connection {
            try await connection.startIdleContainer()
        }
        return connection
    }

    /// Applies `imagePullPolicy` before a container is created.
    func ensureImage() async throws {
        let image = config.execution.image
        switch config.execution.imagePullPolicy {
        case .always:
            try await client.pullImage(image, registryAuth: registryAuth())
        case .ifNotPresent:
            if try await !client.imageExists(image) { try await client.pullImage(image, registryAuth: registryAuth()) }
        case .never:
            if try await !client.imageExists(image) {
                throw DockerError("DOCKER_IMAGE_NOT_FOUND", "image \(image) is not on the engine and imagePullPolicy is Never")
            }
        }
    }

    private func registryAuth() -> String? {
        guard case .object(let fields) = config.execution.auth, !fields.isEmpty else { return nil }
        return Data(ConfigRenderer.compactJSON(config.execution.auth).utf8).base64EncodedString()
    }
}
