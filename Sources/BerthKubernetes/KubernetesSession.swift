import BerthConfig
import BerthCore
import Logging
import NIOCore

/// One session channel on Kubernetes. In connection and persistent mode the program is an exec
/// in the pod, started through the agent (environment by `--env`, PID for signals); in session
/// mode it is the console container of a pod of its own, attached to.
actor KubernetesSession: SessionChannelHandler {
    private let connection: KubernetesConnection
    private let channel: any SessionChannel
    private var environment: [String: String] = [:]
    private var pty: PtyRequest?
    private var stream: KubernetesStream?
    private var sessionPod: String?
    private var pid: UInt32?
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
        guard stream != nil else { throw RequestRefused("KUBERNETES_PROGRAM_NOT_RUNNING", "cannot send signal, program is not running") }
        try await sendThroughAgent(signal)
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    func onClose() async {
        connection.sessionClosed(self)
        if stream != nil { try? await sendThroughAgent("KILL") }
        pump?.cancel()
        await stream?.close()
        if let sessionPod {
            await connection.remove(sessionPod)
            connection.forgetPod(sessionPod)
        }
    }

    /// Graceful stop: the program gets TERM and may still finish its output.
    func terminate() async {
        guard stream != nil else { return }
        try? await sendThroughAgent("TERM")
    }

    /// `agent signal` in the program's pod: by PID in an exec, PID 1 in a session pod (the
    /// console became the program there).
    private func sendThroughAgent(_ signal: String) async throws {
        guard !pod.disableAgent else { throw RequestRefused("KUBERNETES_AGENT_DISABLED", "signals need the agent, which is disabled") }
        let target: (pod: String, pid: UInt32)
        if let sessionPod {
            target = (sessionPod, 1)
        } else if let pod = connection.pod, let pid {
            target = (pod, pid)
        } else {
            throw RequestRefused("KUBERNETES_PROGRAM_NOT_RUNNING", "the program's PID is not known yet")
        }
        let code = try await backend.run(pod: target.pod, [pod.agentPath, "signal", "--pid", String(target.pid), "--signal", signal])
        guard code == 0 else { throw RequestRefused("KUBERNETES_SIGNAL_FAILED", "the agent could not deliver \(signal) (exit code \(code))") }
    }

    private var programEnvironment: [String: String] {
        connection.environment.merging(environment) { _, session in session }
    }

    private func envFlags() -> [String] {
        programEnvironment.sorted { $0.key < $1.key }.flatMap { ["--env", "\($0.key)=\($0.value)"] }
    }

    private func start(_ argv: [String]) async throws {
        let tty = pty != nil
        let size = pty.map { ($0.columns, $0.rows) }
        switch pod.mode {
        case .connection, .persistent:
            guard let podName = connection.pod else { throw KubernetesError("KUBERNETES_NO_POD", "the connection has no pod") }
            // With a terminal the agent holds the program until the terminal has its size.
            let command = [pod.agentPath, "console"] + (tty ? ["--wait"] : []) + ["--pid"] + envFlags() + ["--"] + argv
            let stream = try await backend.exec(pod: podName, command, tty: tty)
            self.stream = stream
            let release: (@Sendable () async throws -> Void)? = tty ? { @Sendable in
                if let size { try? await stream.resize(columns: size.0, rows: size.1) }
                try await stream.write(ByteBuffer(string: "\n"))
            } : nil
            startPump(stream, tty: tty, stripPID: true, release: release, podExit: nil)
        case .session:
            // Output written before the attach would be lost, so the program waits for the
            // attach (--wait) and reports no PID; signals go to PID 1. Without the agent the
            // program starts at once and its environment is the container's.
            let agent = !pod.disableAgent
            let command = agent ? [pod.agentPath, "console", "--wait"] + envFlags() + ["--"] + argv : argv
            let body = KubernetesPodSpec.body(pod: pod, metadata: connection.metadata, command: command,
                                              environment: agent ? connection.environment : programEnvironment, tty: tty, interactive: true)
            let name = try await connection.createPod(body)
            sessionPod = name
            try await connection.writeFiles(into: name)
            let stream = try await backend.attach(pod: name, tty: tty)
            self.stream = stream
            if let size { try? await stream.resize(columns: size.0, rows: size.1) }
            if agent { try await stream.write(ByteBuffer(bytes: [tty ? 0x0A : 0x00])) }
            let backend = self.backend
            // Attach reports Success whatever the program did; the pod status has its exit code.
            startPump(stream, tty: tty, stripPID: false, release: nil) {
                await Self.terminatedExitCode(backend, pod: name)
            }
        }
    }

    private func recordPID(_ pid: UInt32) { self.pid = pid }

    /// Copies stdin in and output out; after the output ends, reports the exit status, then
    /// EOF, then closes the channel.
    private func startPump(_ stream: KubernetesStream, tty: Bool, stripPID: Bool, release: (@Sendable () async throws -> Void)?,
                           podExit: (@Sendable () async -> Int?)?) {
        let channel = self.channel
        let logger = connection.logger
        pump = Task {
            let copyInput: @Sendable () -> Task<Void, Never> = {
                Task {
                    for await chunk in channel.stdin {
                        do { try await stream.write(chunk) } catch { return }
                    }
                    if !tty { await stream.closeStdin() }
                }
            }
            var input: Task<Void, Never>? = release == nil ? copyInput() : nil
            var stdout = ProgramStdout(stripPID: stripPID, tty: tty)
            var exitCode: Int?
            var failure = ""
            do {
                for try await piece in stream.output {
                    switch piece {
                    case .stdout(let bytes):
                        guard let pid = try await stdout.relay(bytes, to: channel) else { continue }
                        self.recordPID(pid)
                        if let release {
                            try await release()
                            input = copyInput()
                        }
                    case .stderr(let bytes):
                        try await channel.writeStderr(bytes)
                    case .status(let code, let message):
                        exitCode = code
                        failure = message
                    }
                }
            } catch where !Task.isCancelled {
                logger.log(.info, "KUBERNETES_STREAM_ENDED", "program stream ended: \(error)", [LogKey.channelID: "\(channel.channelID)"])
            } catch {}
            input?.cancel()
            if Task.isCancelled { return }
            if let podExit { exitCode = await podExit() ?? exitCode }
            if exitCode == nil {
                logger.log(.warning, "KUBERNETES_EXIT_CODE_UNAVAILABLE", "no exit code: \(failure)", [LogKey.channelID: "\(channel.channelID)"])
                try? await channel.writeStderr(ByteBuffer(string: "Berth: \(failure.isEmpty ? "the program's exit code is unknown" : failure)\r\n"))
            }
            await channel.sendExitStatus(UInt32(truncatingIfNeeded: exitCode ?? 137))
            await channel.closeWrite()
            await channel.close()
        }
    }

    /// Session mode: the console container's exit code from the pod status.
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
