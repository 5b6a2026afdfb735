import BerthConfig
import BerthCore
import Logging
import NIOConcurrencyHelpers

/// The Kubernetes backend (SPEC §12): a pod per connection (`connection`), per session
/// (`session`), or one named pod shared by every connection (`persistent`).
public final class KubernetesBackend: Sendable {
    let config: KubernetesConfig
    let client: KubernetesClient
    let logger: Logger

    /// The streaming protocol version the API server speaks, learnt from the first stream.
    private let negotiated = NIOLockedValueBox<Int?>(nil)

    public init(config: KubernetesConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        client = KubernetesClient(endpoint: try KubernetesEndpoint.resolve(config.connection), timeout: config.timeouts.http.duration)
    }

    var endpoint: KubernetesEndpoint { client.endpoint }
    var namespace: String { config.pod.namespace }
    var container: String { KubernetesPodSpec.consoleContainer(config.pod) }

    public func shutdown() async { await client.shutdown() }

    /// Crash hygiene: at start-up no connection of this server is live, so the pods it labelled
    /// are left over from an earlier run (persistent pods carry no such label).
    public func removeOrphans() async {
        guard config.pod.mode != .persistent else { return }
        do {
            for pod in try await client.listPods(namespace: namespace, labelSelector: KubernetesPodSpec.orphanSelector) {
                try await client.deletePod(namespace: pod.namespace, name: pod.name)
                logger.log(.notice, "KUBERNETES_ORPHAN_REMOVED", "removed a pod left over from an earlier run", ["pod": "\(pod.namespace)/\(pod.name)"])
            }
        } catch {
            logger.log(.warning, "KUBERNETES_ORPHAN_CLEANUP_FAILED", "could not look for left-over pods: \(error)")
        }
    }

    /// `ownsBackend`: this backend was made for this one connection and closes with it.
    public func connect(_ metadata: ConnectionMetadata, logger: Logger, ownsBackend: Bool = false) async throws -> KubernetesConnection {
        let connection = KubernetesConnection(backend: self, metadata: metadata, logger: logger, ownsBackend: ownsBackend)
        do {
            switch config.pod.mode {
            case .connection: try await connection.startPod()
            case .persistent: try await connection.findPersistentPod()
            case .session: break
            }
        } catch {
            await connection.tearDown()
            throw error
        }
        return connection
    }

    /// Opens an exec stream in `pod`.
    func exec(pod: String, _ command: [String], tty: Bool, stdin: Bool = true) async throws -> KubernetesStream {
        let query = KubernetesPodSpec.execQuery(command, container: container, tty: tty, stdin: stdin)
        let stream = try await KubernetesStream.open(endpoint: endpoint, pathAndQuery: "/api/v1/namespaces/\(namespace)/pods/\(pod)/exec?\(query)",
                                                     timeout: config.timeouts.commandStart.duration)
        negotiated.withLockedValue { $0 = stream.version }
        return stream
    }

    /// Whether stdin can be closed (v5); asks with a harmless exec the first time.
    func canCloseStdin(pod: String) async throws -> Bool {
        if let version = negotiated.withLockedValue({ $0 }) { return version >= 5 }
        let probe = try await exec(pod: pod, [config.pod.agentPath, "--help"], tty: false, stdin: false)
        await probe.close()
        return probe.version >= 5
    }

    /// `agent write-file` with `data` on stdin; without stdin close (v4) the agent is told the size.
    func writeFile(pod: String, path: String, data: [UInt8]) async throws -> Int {
        let sized = try await !canCloseStdin(pod: pod)
        let command = [config.pod.agentPath, "write-file"] + (sized ? ["--size", String(data.count)] : []) + [path]
        return try await run(pod: pod, command, input: data)
    }

    func attach(pod: String, tty: Bool) async throws -> KubernetesStream {
        var query = ["stdin=true", "stdout=true", "stderr=\(!tty)", "tty=\(tty)"]
        if !container.isEmpty { query.append("container=\(KubernetesClient.encode(container))") }
        return try await KubernetesStream.open(endpoint: endpoint, pathAndQuery: "/api/v1/namespaces/\(namespace)/pods/\(pod)/attach?\(query.joined(separator: "&"))",
                                               timeout: config.timeouts.commandStart.duration)
    }

    /// Runs a short command to completion; returns its exit code.
    func run(pod: String, _ command: [String], input: [UInt8]? = nil) async throws -> Int {
        let stream = try await exec(pod: pod, command, tty: false, stdin: input != nil)
        if let input {
            if !input.isEmpty { try await stream.write(.init(bytes: input)) }
            await stream.closeStdin()
        }
        var code: Int?
        var message = ""
        for try await piece in stream.output {
            if case .status(let exit, let text) = piece { code = exit; message = text }
        }
        await stream.close()
        guard let code else { throw KubernetesError("KUBERNETES_EXEC_FAILED", "\(command.first ?? "") failed: \(message)") }
        return code
    }
}
