import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The Docker backend: one container per connection (`connection` mode) or per session
/// channel (`session` mode), removed when the user leaves; or one per user that outlives
/// connections (`persistent`, `DockerPersistentRegistry`).
public final class DockerBackend: Sendable {
    /// What a container may be given without the config webhook policy's `capabilities`.
    public static func ordinaryCapabilities(_ config: DockerConfig) -> Set<String> {
        DockerContainerSpec.capabilities(operatorHost: config.execution.host)
    }

    let client: DockerClient
    let config: DockerConfig
    /// This server, as its containers' labels name it.
    let identity: ServerIdentity
    let persistence: PersistenceConfig
    let logger: Logger
    private let poolBox = NIOLockedValueBox<DockerPool?>(nil)
    /// The user network's preparation, done once per backend (retried after a failure).
    private let networkBox = NIOLockedValueBox<Task<String, Error>?>(nil)
    private let sweeper = NIOLockedValueBox<Task<Void, Never>?>(nil)
    var pool: DockerPool? { poolBox.withLockedValue { $0 } }

    /// `pooled`: this backend keeps the warm pool of `execution.pool` (only the server-wide one
    /// does; backends made for a per-user configuration start every container themselves).
    /// `security.maxSessions` (nil: no limit), which detached sessions count against.
    let maxSessions: Int?

    public init(
        config: DockerConfig, identity: ServerIdentity, persistence: PersistenceConfig = PersistenceConfig(), maxSessions: Int? = nil, logger: Logger,
        pooled: Bool = false
    ) throws {
        self.identity = identity
        self.maxSessions = maxSessions
        let endpoint = try DockerEndpoint(host: config.connection.host, cacert: config.connection.cacert, cert: config.connection.cert, key: config.connection.key)
        self.client = DockerClient(endpoint: endpoint, requestTimeout: config.timeouts.http.duration, logger: logger)
        self.config = config
        self.persistence = persistence
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
        let labels = [(DockerContainerSpec.connectionLabel, DockerContainerSpec.poolLabelValue), ("berth.pool", "1")] + DockerContainerSpec.ownerLabels(identity)
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

    /// The server-wide backend's start: its liveness record, clean-up of what an earlier run or
    /// a dead server left, the persistent containers it now looks after, the warm pool, and a
    /// sweep that keeps reaping the containers of servers that die later.
    public func start() async throws {
        if config.connection.host.hasPrefix("unix://") && !config.execution.agentSocketRoot.isEmpty {
            try DockerLiveness.acquire(root: config.execution.agentSocketRoot, identity: identity.name)
        } else {
            logger.log(
                .info, "SERVER_LIVENESS_UNAVAILABLE",
                "the engine is remote (or agentSocketRoot is empty): other servers' left-over containers are not reaped, only this identity's",
                ["identity": "\(identity.name)"])
        }
        await DockerPersistentRegistry.shared.configure(persistence)
        await sweep(startup: true)
        await startPool()
        let interval = max(.seconds(1), DockerPersistentRegistry.interval(persistence))
        sweeper.withLockedValue { box in
            box = Task { [weak self] in
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    await self?.sweep(startup: false)
                }
            }
        }
    }

    /// Stops the sweep and removes the pool's unused containers.
    public func stop() async {
        sweeper.withLockedValue { $0?.cancel() }
        await stopPool()
    }

    /// Crash hygiene: this server's own containers at start-up (no connection of it is live
    /// yet), and at any time those of a server whose liveness record nobody holds any more.
    /// Persistent containers are never orphans: they belong to their user and go by the
    /// `persistence` timers of the server that looks after them, which takes over those whose
    /// server died (docs/architecture.md, "Ownership and clean-up").
    public func sweep(startup: Bool) async {
        do {
            var adopted: [(name: String, id: String, created: Date)] = []
            let containers = try await client.listContainers(label: ServerIdentity.label)
            defer { logger.log(.debug, "DOCKER_SWEEP_DONE", "looked for containers nobody owns", ["containers": "\(containers.count)", "startup": "\(startup)"]) }
            for container in containers {
                let owner = container.labels[ServerIdentity.label]
                let ownerDead = owner != identity.name && DockerLiveness.owner(recordedAt: container.labels[DockerLiveness.label]) == .dead
                if let username = container.labels[DockerContainerSpec.persistentLabel] {
                    guard (startup && owner == identity.name) || ownerDead,
                        let found = try await client.inspectContainer(container.id)
                    else { continue }
                    adopted.append((persistentName(for: username), found.id, found.created))
                    continue
                }
                guard container.labels[DockerContainerSpec.connectionLabel] != nil, (startup && owner == identity.name) || ownerDead else { continue }
                try await client.removeContainer(container.id)
                if let directory = container.labels[DockerContainerSpec.linkDirectoryLabel], directory.hasPrefix(config.execution.agentSocketRoot + "/") {
                    Self.removeDirectory(directory)
                }
                logger.log(
                    .notice, "DOCKER_ORPHAN_REMOVED",
                    owner == identity.name ? "removed a container left over from an earlier run" : "removed a container of a server that is no longer running",
                    ["containerId": "\(container.id)", "connectionId": "\(container.labels[DockerContainerSpec.connectionLabel] ?? "")", "server": "\(owner ?? "")"])
            }
            if !adopted.isEmpty {
                await DockerPersistentRegistry.shared.adopt(adopted, backend: self, persistence: persistence)
                logger.log(.info, "DOCKER_PERSISTENT_ADOPTED", "looking after persistent containers found on the engine", ["count": "\(adopted.count)"])
            }
        } catch {
            logger.log(.warning, "DOCKER_ORPHAN_CLEANUP_FAILED", "could not look for left-over containers: \(error)")
        }
    }

    /// Prepares the user's environment after authentication.
    public func connect(_ metadata: ConnectionMetadata, logger: Logger) async throws -> DockerConnection {
        let connection = DockerConnection(backend: self, metadata: metadata, logger: logger)
        if config.execution.mode != .session {
            do {
                try await (config.execution.mode == .persistent ? connection.attachPersistent() : connection.startIdleContainer())
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
            logger.log(
                .warning, "DOCKER_NETWORK_NOT_ISOLATED", "network \(name) lets its containers reach each other (Berth did not create it); users can reach each other's services",
                ["network": "\(name)"])
        }
        guard config.execution.userNetworkFirewall else { return name }
        guard config.connection.host.hasPrefix("unix://") else {
            logger.log(
                .warning, "DOCKER_FIREWALL_REMOTE",
                "the engine is remote: Berth cannot add the firewall rules that keep containers on \(name) from the engine's host and link-local addresses (docs/security.md, \"Docker network\")",
                ["network": "\(name)"])
            return name
        }
        do {
            try await DockerFirewall.apply(bridge: bridge)
            logger.log(.info, "DOCKER_FIREWALL_APPLIED", "containers on \(name) cannot reach this host or link-local addresses", ["network": "\(name)", "bridge": "\(bridge)"])
        } catch {
            logger.log(
                .warning, "DOCKER_FIREWALL_FAILED",
                "\((error as? CodedError)?.message ?? "\(error)"); containers on \(name) can reach this host and link-local addresses (cloud metadata). Run Berth as root with iptables, or set docker.execution.userNetworkFirewall: false to accept that",
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
