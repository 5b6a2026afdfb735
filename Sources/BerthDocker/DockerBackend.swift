import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The Docker backend: one container per connection (`connection` mode) or per session
/// channel (`session` mode), removed when the user leaves.
public final class DockerBackend: Sendable {
    /// What a container may be given without the config webhook policy's `capabilities`.
    public static func ordinaryCapabilities(_ config: DockerConfig) -> Set<String> {
        DockerContainerSpec.capabilities(operatorHost: config.execution.host)
    }

    let client: DockerClient
    let config: DockerConfig
    let logger: Logger
    private let poolBox = NIOLockedValueBox<DockerPool?>(nil)
    /// The user network's preparation, done once per backend (retried after a failure).
    private let networkBox = NIOLockedValueBox<Task<String, Error>?>(nil)
    var pool: DockerPool? { poolBox.withLockedValue { $0 } }

    /// `pooled`: this backend keeps the warm pool of `execution.pool` (only the server-wide one
    /// does; backends made for a per-user configuration start every container themselves).
    public init(config: DockerConfig, logger: Logger, pooled: Bool = false) throws {
        let endpoint = try DockerEndpoint(host: config.connection.host, cacert: config.connection.cacert, cert: config.connection.cert, key: config.connection.key)
        self.client = DockerClient(endpoint: endpoint, requestTimeout: config.timeouts.http.duration, logger: logger)
        self.config = config
        self.logger = logger
        if pooled && config.execution.pool.size > 0 && config.execution.mode == .connection {
            let pool = DockerPool(backend: self, config: config.execution.pool)
            poolBox.withLockedValue { $0 = pool }
        }
    }

    /// Starts filling the warm pool, if configured.
    public func startPool() async { await pool?.start() }

    /// Removes the pool's unused containers.
    public func stopPool() async { await pool?.shutdown() }

    /// A started idle container, linked, that belongs to no connection yet.
    func startPoolContainer() async throws -> DockerLinkedContainer {
        let labels = [(DockerContainerSpec.connectionLabel, DockerContainerSpec.poolLabelValue), ("berth.pool", "1"), (ServerIdentity.label, ServerIdentity.name)]
        let createdID = NIOLockedValueBox<String?>(nil)
        do {
            return try await startLinkedContainer(name: nil, labels: labels, environment: [:], logger: logger) { id in createdID.withLockedValue { $0 = id } }
        } catch {
            if let id = createdID.withLockedValue({ $0 }) {
                try? await client.removeContainer(id)
                BerthMetrics.containerRemoved()
            }
            throw error
        }
    }

    /// Crash hygiene (docs/configuration.md, "docker"): at start-up no connection is live, so every container carrying
    /// Berth's connection label is left over from an earlier run.
    public func removeOrphans() async {
        do {
            // Only this server's: another Berth on the same engine may be serving users right now.
            let orphans = try await client.listContainers(label: DockerContainerSpec.connectionLabel)
                .filter { $0.labels[ServerIdentity.label] == ServerIdentity.name }
            for orphan in orphans {
                try await client.removeContainer(orphan.id)
                if let directory = orphan.labels[DockerContainerSpec.linkDirectoryLabel], directory.hasPrefix(config.execution.agentSocketRoot + "/") {
                    Self.removeDirectory(directory)
                }
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
            do {
                try await connection.startIdleContainer()
            } catch {
                // Nobody owns a connection that failed to start: remove what it made now.
                await connection.tearDown()
                throw error
            }
        }
        return connection
    }

    /// The network user containers join (`DockerUserNetwork`), made ready on first use; nil when
    /// the operator chose their own.
    func userNetwork() async throws -> String? {
        guard let name = DockerUserNetwork.name(for: config.execution) else { return nil }
        let preparation = networkBox.withLockedValue { box in
            if let running = box { return running }
            let task = Task { try await self.prepareNetwork(name) }
            box = task
            return task
        }
        do {
            return try await preparation.value
        } catch {
            networkBox.withLockedValue { $0 = nil }
            throw error
        }
    }

    private func prepareNetwork(_ name: String) async throws -> String {
        let (bridge, isolated) = try await DockerUserNetwork.ensure(name, client: client)
        if !isolated {
            logger.log(.warning, "DOCKER_NETWORK_NOT_ISOLATED", "network \(name) lets its containers reach each other (Berth did not create it); users can reach each other's services",
                       ["network": "\(name)"])
        }
        guard config.execution.userNetworkFirewall else { return name }
        guard config.connection.host.hasPrefix("unix://") else {
            logger.log(.warning, "DOCKER_FIREWALL_REMOTE", "the engine is remote: Berth cannot add the firewall rules that keep containers on \(name) from the engine's host and link-local addresses (docs/security.md, \"Docker network\")",
                       ["network": "\(name)"])
            return name
        }
        do {
            try await DockerFirewall.apply(bridge: bridge)
            logger.log(.info, "DOCKER_FIREWALL_APPLIED", "containers on \(name) cannot reach this host or link-local addresses", ["network": "\(name)", "bridge": "\(bridge)"])
        } catch {
            logger.log(.warning, "DOCKER_FIREWALL_FAILED", "\((error as? CodedError)?.message ?? "\(error)"); containers on \(name) can reach this host and link-local addresses (cloud metadata). Run Berth as root with iptables, or set docker.execution.userNetworkFirewall: false to accept that",
                       ["network": "\(name)", "bridge": "\(bridge)"])
        }
        return name
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
