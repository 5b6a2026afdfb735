import BerthConfig
import BerthCore
import BerthForwarding
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// One user's connection on the Docker backend: owns the containers made for it and removes
/// them all when the connection ends.
public final class DockerConnection: SSHConnectionHandler, ContainerOwner {
    let backend: DockerBackend
    let metadata: ConnectionMetadata
    let logger: Logger
    let forwards = ForwardRegistry()
    private let state = NIOLockedValueBox(State())

    private struct State {
        var idleContainer: String?
        var sessionContainers: Set<String> = []
        var removed: Set<String> = []
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

    /// The container's environment: webhook `environment`, and metadata if exposed.
    var environment: [String: String] {
        DockerContainerSpec.environment(metadata, exposeMetadata: execution.exposeAuthMetadataAsEnv)
    }

    /// Connection mode: the container runs the idle command; every session is an exec in it.
    func startIdleContainer() async throws {
        if let pooled = await backend.pool?.take() {
            state.withLockedValue { $0.idleContainer = pooled }
            logger.log(.debug, "DOCKER_POOL_CONTAINER_TAKEN", "using a container from the warm pool", ["containerId": "\(pooled)"])
            try await writeFiles(into: pooled)
            return
        }
        try await backend.ensureImage()
        let body = DockerContainerSpec.body(execution: execution, metadata: metadata, command: execution.idleCommand, environment: environment, tty: false, interactive: false)
        let id = try await createContainer(body)
        state.withLockedValue { $0.idleContainer = id }
        try await withTimeout(backend.config.timeouts.containerStart, "starting the container") {
            try await self.client.startContainer(id)
        }
        logger.log(.debug, "DOCKER_CONTAINER_STARTED", "container started", ["containerId": "\(id)"])
        try await writeFiles(into: id)
    }

    /// Creates a container and remembers it for removal, even if starting it fails later.
    func createContainer(_ body: ConfigValue) async throws -> String {
        let name = execution.containerName.isEmpty ? nil : execution.containerName
        let id = try await client.createContainer(name: name, body: body)
        BerthMetrics.containerStarted()
        return id
    }

    func trackSessionContainer(_ id: String, active: Bool) {
        state.withLockedValue { state in
            if active { state.sessionContainers.insert(id) } else { state.sessionContainers.remove(id) }
        }
    }

    /// Webhook `files` go in through `agent write-file` (mode 0600).
    func writeFiles(into container: String) async throws {
        guard !metadata.files.isEmpty else { return }
        guard !execution.disableAgent else {
            logger.log(.warning, "DOCKER_FILES_NEED_AGENT", "files from the webhook were not written: the agent is disabled")
            return
        }
        for (path, file) in metadata.files.sorted(by: { $0.key < $1.key }) {
            let exec = try await client.createExec(containerID: container, command: [execution.agentPath, "write-file", path], tty: false)
            let stream = try await client.startExec(exec, tty: false)
            try await stream.write(ByteBuffer(bytes: file.value))
            await stream.closeWrite()
            for try await _ in stream.output {}
            let code = try await DockerExitCode.wait(client: client, exec: exec)
            guard code == 0 else { throw DockerError("DOCKER_FILE_WRITE_FAILED", "writing \(path) into the container failed with exit code \(code)") }
        }
    }

    public func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        DockerSession(connection: self, channel: channel)
    }

    public func onUnsupportedChannel(type: String) async {}
    public func onUnsupportedGlobalRequest(type: String) async {}
    public func onShutdown(deadline: ContinuousClock.Instant) async {}

    /// Graceful stop: TERM to the containers' main processes. In connection mode that ends the
    /// idle agent, so the container stops and every exec in it ends; sessions then report
    /// their exit status as usual.
    public func terminatePrograms() async {
        let containers = state.withLockedValue { [$0.idleContainer].compactMap { $0 } + $0.sessionContainers }
        for id in containers {
            try? await client.killContainer(id, signal: "TERM")
        }
    }

    public var isTornDown: Bool { state.withLockedValue { $0.tornDown } }

    /// Removes every container of this connection, retrying until `containerStop` runs out.
    public func tearDown() async {
        await forwards.closeAll()
        let containers = state.withLockedValue { state -> [String] in
            guard !state.tornDown else { return [] }
            state.tornDown = true
            return [state.idleContainer].compactMap { $0 } + state.sessionContainers
        }
        for id in containers { await remove(id) }
    }

    func remove(_ id: String) async {
        guard state.withLockedValue({ $0.removed.insert(id).inserted }) else { return }
        let deadline = ContinuousClock.now + backend.config.timeouts.containerStop.duration
        while true {
            do {
                try await client.removeContainer(id)
                BerthMetrics.containerRemoved()
                logger.log(.debug, "DOCKER_CONTAINER_REMOVED", "container removed", ["containerId": "\(id)"])
                return
            } catch {
                if ContinuousClock.now >= deadline {
                    logger.log(.error, "DOCKER_CONTAINER_REMOVE_FAILED", "could not remove container: \(error)", ["containerId": "\(id)"])
                    return
                }
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
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
