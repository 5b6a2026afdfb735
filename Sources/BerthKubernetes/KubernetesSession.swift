import BerthConfig
import BerthCore
import Logging
import NIOCore

/// One session channel without the agent (`disableAgent`, session mode only): the program is
/// the console container of a pod of its own, attached to; its environment is the pod's, the
/// exit code comes from the pod status, and signals are refused.
actor KubernetesSession: SessionChannelHandler {
    private let connection: KubernetesConnection
    private let channel: any SessionChannel
    private var environment: [String: String] = [:]
    private var pty: PtyRequest?
    private var stream: KubernetesStream?
    private var sessionPod: String?
    private var pump: Task<Void, Never>?

    init(connection: KubernetesConnection, channel: any SessionChannel) {
        self.connection = connection
        self.channel = channel
    }

    private var backend: KubernetesBackend { connection.backend }
    private var pod: KubernetesConfig.Pod { backend.config.pod }

    func onEnv(requestID: UInt64, name: String, value: String) async throws { environment[name] = value }

    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {
        self.pty = pty
        environment["TERM"] = pty.term
    }

    func onShell(requestID: UInt64) async throws { try await start(pod.shellCommand) }
    func onExec(requestID: UInt64, command: String) async throws { try await start(ShellWords.argv(for: command)) }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        guard let path = pod.subsystems[name], !path.isEmpty else {
            throw RequestRefused("KUBERNETES_SUBSYSTEM_NOT_SUPPORTED", "subsystem \(name) is not configured")
        }
        try await start([path])
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        guard let stream else { throw RequestRefused("KUBERNETES_PROGRAM_NOT_RUNNING", "cannot resize window, program is not running") }
        try await stream.resize(columns: size.columns, rows: size.rows)
    }

    func onSignal(requestID: UInt64, signal: String) async throws {
        throw RequestRefused("KUBERNETES_AGENT_DISABLED", "signals need the agent, which is disabled")
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    func onClose() async {
        connection.sessionClosed(self)
        pump?.cancel()
        await stream?.close()
        if let sessionPod {
            await connection.remove(sessionPod)
            connection.forgetPod(sessionPod)
        }
    }

    /// Graceful stop: without the agent there is no way to signal the program; the pod goes
    /// with the connection.
    func terminate() async {}

    private func start(_ argv: [String]) async throws {
        let tty = pty != nil
        let environment = connection.environment.merging(self.environment) { _, session in session }
        let body = KubernetesPodSpec.body(pod: pod, metadata: connection.metadata, command: argv, environment: environment, tty: tty, interactive: true)
        let name = try await connection.createPod(body)
        sessionPod = name
        // Without the agent nothing can write the webhook's files; this says so in the log.
        try await connection.writeFiles(nil)
        let stream = try await backend.attach(pod: name, tty: tty)
        self.stream = stream
        if let pty { try? await stream.resize(columns: pty.columns, rows: pty.rows) }
        let backend = self.backend
        startPump(stream, tty: tty) { await Self.terminatedExitCode(backend, pod: name) }
    }

    /// Copies stdin in and output out; after the output ends, reports the exit status, then
    /// EOF, then closes the channel.
    private func startPump(_ stream: KubernetesStream, tty: Bool, podExit: @escaping @Sendable () async -> Int?) {
        let channel = self.channel
        let logger = connection.logger
        pump = Task {
            let input = Task {
                for await chunk in channel.stdin {
                    do { try await stream.write(chunk) } catch { return }
                }
                if !tty { await stream.closeStdin() }
            }
            var failure = ""
            do {
                for try await piece in stream.output {
                    switch piece {
                    case .stdout(let bytes): try await channel.writeStdout(bytes)
                    case .stderr(let bytes): try await channel.writeStderr(bytes)
                    case .status(_, let message): failure = message
                    }
                }
            } catch where !Task.isCancelled {
                logger.log(.info, "KUBERNETES_STREAM_ENDED", "program stream ended: \(error)", [LogKey.channelID: "\(channel.channelID)"])
            } catch {}
            input.cancel()
            if Task.isCancelled { return }
            // Attach reports Success whatever the program did; the pod status has its exit code.
            let exitCode = await podExit()
            if exitCode == nil {
                logger.log(.warning, "KUBERNETES_EXIT_CODE_UNAVAILABLE", "no exit code: \(failure)", [LogKey.channelID: "\(channel.channelID)"])
                try? await channel.writeStderr(ByteBuffer(string: "Berth: \(failure.isEmpty ? "the program's exit code is unknown" : failure)\r\n"))
            }
            await channel.sendExitStatus(UInt32(truncatingIfNeeded: exitCode ?? 137))
            await channel.closeWrite()
            await channel.close()
        }
    }

    /// The console container's exit code from the pod status.
    private static func terminatedExitCode(_ backend: KubernetesBackend, pod: String) async -> Int? {
        for _ in 0..<60 {
            if let status = try? await backend.client.getPod(namespace: backend.namespace, name: pod),
               let code = status.exitCode(container: backend.config.pod.consoleContainerNumber) {
                return code
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return nil
    }
}
