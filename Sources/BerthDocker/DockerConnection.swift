import BerthAgentLink
import BerthAgentProtocol
import BerthConfig
import BerthCore
import BerthForwarding
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One user's connection on the Docker backend: owns the containers made for it and removes
/// them all when the connection ends. Sessions run through the container's agent link
/// (`AgentSession`); only with `disableAgent` are they execs or attached containers (`DockerSession`).
public final class DockerConnection: SSHConnectionHandler, ContainerOwner, AgentSessionHost {
    let backend: DockerBackend
    let metadata: ConnectionMetadata
    public let logger: Logger
    public let forwards = ForwardRegistry()
    private let state = NIOLockedValueBox(State())

    private struct State {
        var idleContainer: String?
        var link: AgentLink?
        /// Containers this connection must remove, with their link directories.
        var containers: [String: String?] = [:]
        var sessionContainers: Set<String> = []
        var removed: Set<String> = []
        var sessions: [ObjectIdentifier: AgentSession] = [:]
        /// Session channels, for the notice when a persistent container's time is up.
        var channels: [ObjectIdentifier: any SessionChannel] = [:]
        /// Persistent mode: the user's container, which this connection shares and never removes.
        var persistent = false
        var expired = false
        var tornDown = false
    }

    init(backend: DockerBackend, metadata: ConnectionMetadata, logger: Logger) {
        self.backend = backend
        self.metadata = metadata
        self.logger = logger
    }

    var execution: DockerExecutionConfig { backend.config.execution }
    var client: DockerClient { backend.client }
    var idleContainer: String? { state.withLockedValue { $0.idleContainer } }
    public var servingContainer: String? { idleContainer.map { String($0.prefix(12)) } }
    public var link: AgentLink? { state.withLockedValue { $0.link } }

    /// The programs' environment: webhook `environment`, and metadata if exposed. It reaches
    /// programs through the agent link or an exec, never the container's spec, which the engine
    /// keeps and `docker inspect` shows.
    var environment: [String: String] {
        metadata.programEnvironment(exposeMetadata: execution.exposeAuthMetadataAsEnv)
    }

    /// Without the agent, in session mode, the container spec is the only way in: sensitive
    /// entries stay out.
    var containerSpecEnvironment: [String: String] {
        metadata.specEnvironment(
            exposeMetadata: execution.exposeAuthMetadataAsEnv, logger: logger, code: "DOCKER_SENSITIVE_ENV_OMITTED",
            spec: "container spec (disableAgent, session mode)")
    }

    /// Connection mode: the container's PID 1 is the agent (or the idle command); every session
    /// is a program started over its link.
    func startIdleContainer() async throws {
        if let pooled = await backend.pool?.take() {
            state.withLockedValue {
                $0.idleContainer = pooled.id
                $0.link = pooled.link
                $0.containers[pooled.id] = pooled.linkDirectory
            }
            // Labels cannot change on a running container; the name maps it to this connection.
            let name = "berth-\(metadata.connectionID.hex)"
            do {
                try await client.renameContainer(pooled.id, to: name)
            } catch {
                logger.log(.warning, "DOCKER_POOL_RENAME_FAILED", "could not name the pool container after the connection: \(error)", ["containerId": "\(pooled.id)"])
            }
            logger.log(.debug, "DOCKER_POOL_CONTAINER_TAKEN", "using a container from the warm pool", ["containerId": "\(pooled.id)", "name": "\(name)"])
            try await writeFiles()
            return
        }
        let container = try await backend.startLinkedContainer(
            name: containerName, labels: DockerContainerSpec.labels(metadata, owner: backend.identity), environment: [:],
            logger: logger
        ) { id in
            self.state.withLockedValue {
                $0.idleContainer = id
                $0.containers[id] = .some(nil)
            }
        }
        state.withLockedValue {
            $0.link = container.link
            $0.containers[container.id] = container.linkDirectory
        }
        logger.log(.debug, "DOCKER_CONTAINER_STARTED", "container started", ["containerId": "\(container.id)", "link": "\(container.link?.kind ?? "none")"])
        try await writeFiles()
    }

    private var containerName: String? { execution.containerName.isEmpty ? nil : execution.containerName }

    /// Persistent mode: the user's container, shared with their other connections.
    func attachPersistent() async throws {
        let (id, link) = try await DockerPersistentRegistry.shared.attach(self)
        state.withLockedValue {
            $0.idleContainer = id
            $0.link = link
            $0.persistent = true
        }
        logger.log(.debug, "DOCKER_PERSISTENT_ATTACHED", "using the user's persistent container", ["containerId": "\(id)"])
        try await writeFiles()
    }

    /// The user's persistent container reached `maxLifetime` (or its idle time, with this
    /// connection already going): its programs are about to end, and the user learns why.
    func persistentContainerExpired() async {
        let channels = state.withLockedValue { state -> [any SessionChannel] in
            state.expired = true
            return Array(state.channels.values)
        }
        let line = UserNotice.line(
            "your container reached its maximum lifetime and is being removed; log in again for a new one",
            code: "DOCKER_PERSISTENT_EXPIRED", logger: logger)
        for channel in channels { try? await channel.writeStderr(ByteBuffer(string: line)) }
    }

    /// Creates a container (session mode without the agent) and remembers it for removal.
    func createContainer(_ body: ConfigValue) async throws -> String {
        let id = try await client.createContainer(name: containerName, body: body)
        BerthMetrics.containerStarted()
        state.withLockedValue { $0.containers[id] = .some(nil) }
        return id
    }

    func trackSessionContainer(_ id: String, active: Bool) {
        state.withLockedValue { state in
            if active { state.sessionContainers.insert(id) } else { state.sessionContainers.remove(id) }
        }
    }

    /// Webhook `files` go in through the agent (mode 0600).
    func writeFiles() async throws {
        guard !metadata.files.isEmpty else { return }
        guard let link else {
            logger.log(.warning, "DOCKER_FILES_NEED_AGENT", "files from the webhook were not written: the agent is disabled")
            return
        }
        try await link.writeFiles(metadata.files, as: loginAccount, failure: "DOCKER_FILE_WRITE_FAILED", into: "container")
    }

    public func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        if execution.disableAgent { return DockerSession(connection: self, channel: channel) }
        let session = AgentSession(host: self, channel: channel)
        state.withLockedValue {
            $0.sessions[ObjectIdentifier(session)] = session
            $0.channels[ObjectIdentifier(session)] = channel
        }
        return session
    }

    // MARK: AgentSessionHost

    public var shellCommand: [String] { execution.shellCommand }
    public var subsystems: [String: String] { execution.subsystems }
    public var programEnvironment: [String: String] { environment }
    public var loginAccount: AgentUser? { execution.loginUser.account(for: metadata.effectiveUsername) }

    /// A persistent container outlives the connection, so its interactive programs may too
    /// (docs/agent-protocol.md, "Resumable sessions").
    public var resume: AgentResumeSettings? {
        guard state.withLockedValue({ $0.persistent }) else { return nil }
        return AgentResumeSettings(persistence: backend.persistence, owner: metadata.effectiveUsername, maxSessions: backend.maxSessions)
    }

    public var openSessionCount: Int { state.withLockedValue { $0.sessions.count } }

    public func sessionTarget() async throws -> AgentSessionTarget {
        switch execution.mode {
        case .connection, .persistent:
            if state.withLockedValue({ $0.expired }) {
                throw RequestRefused("DOCKER_PERSISTENT_EXPIRED", "your container reached its maximum lifetime; log in again")
            }
            guard let link else { throw DockerError("DOCKER_NO_CONTAINER", "the connection has no container") }
            if let reason = link.closedReason {
                throw RequestRefused("DOCKER_AGENT_GONE", "the agent in the container is gone: \(reason)")
            }
            return AgentSessionTarget(link: link)
        case .session:
            // A container of the session's own, with the agent as its PID 1.
            let container = try await backend.startLinkedContainer(
                name: containerName, labels: DockerContainerSpec.labels(metadata, owner: backend.identity), environment: [:],
                logger: logger
            ) { id in
                self.state.withLockedValue {
                    $0.containers[id] = .some(nil)
                    $0.sessionContainers.insert(id)
                }
            }
            state.withLockedValue { $0.containers[container.id] = container.linkDirectory }
            guard let link = container.link else { throw DockerError("DOCKER_NO_AGENT", "the agent is disabled") }
            return AgentSessionTarget(link: link) {
                await link.close()
                await self.remove(container.id)
                self.trackSessionContainer(container.id, active: false)
            }
        }
    }

    public func sessionEnded(_ session: AgentSession) {
        state.withLockedValue {
            _ = $0.sessions.removeValue(forKey: ObjectIdentifier(session))
            _ = $0.channels.removeValue(forKey: ObjectIdentifier(session))
        }
    }

    public func onUnsupportedChannel(type: String) async {}
    public func onUnsupportedGlobalRequest(type: String) async {}

    /// Graceful stop: TERM to every program. With the agent every program is a session and gets
    /// it over the link; a TERM to the agent (PID 1) would end the link and kill them all before
    /// they could finish. Without the agent the containers' main processes get it: in connection
    /// mode that ends the idle command, so the container stops and every exec in it ends.
    public func terminatePrograms() async {
        for session in state.withLockedValue({ Array($0.sessions.values) }) { await session.terminate() }
        guard execution.disableAgent else { return }
        let containers = state.withLockedValue { [$0.idleContainer].compactMap { $0 } + $0.sessionContainers }
        for id in containers {
            try? await client.killContainer(id, signal: "TERM")
        }
    }

    /// Removes every container of this connection, retrying until `containerStop` runs out.
    public func tearDown() async {
        await forwards.closeAll()
        let (containers, link, persistent) = state.withLockedValue { state -> ([String], AgentLink?, Bool) in
            guard !state.tornDown else { return ([], nil, false) }
            state.tornDown = true
            return (Array(state.containers.keys), state.link, state.persistent)
        }
        if persistent {
            // The link and the container are the user's, shared with their other connections;
            // this connection's programs ended as the front end closed its channels.
            await DockerPersistentRegistry.shared.detach(self)
            return
        }
        await link?.close()
        for id in containers { await remove(id) }
    }

    func remove(_ id: String) async {
        let directory = state.withLockedValue { state -> String?? in
            guard state.removed.insert(id).inserted else { return .none }
            return .some(state.containers[id] ?? nil)
        }
        guard case .some(let linkDirectory) = directory else { return }
        await backend.removeLinked(id, linkDirectory: linkDirectory, logger: logger)
    }
}

/// Runs `body`, failing with DOCKER_TIMEOUT if it takes longer than `limit`.
func withTimeout<T: Sendable>(_ limit: BerthDuration, _ what: String, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withDeadline(limit.duration, DockerError("DOCKER_TIMEOUT", "\(what) took longer than \(limit)"), body)
}

enum DockerExitCode {
    /// The exec's exit code once the engine reports it finished (it may lag the stream's end).
    static func wait(client: DockerClient, exec: String) async throws -> Int {
        for _ in 0..<100 {
            let state = try await client.inspectExec(exec)
            if !state.running, let code = state.exitCode { return code }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw DockerError("DOCKER_EXIT_CODE_UNAVAILABLE", "the engine did not report the program's exit code")
    }
}
