import BerthConfig
import BerthCore
import Logging
import NIOCore

/// One session channel without the agent (`disableAgent`, session mode only): the program is
/// the console container of a pod of its own, attached to; its environment is the pod's, the
/// exit code comes from the pod status, and signals are refused.
actor KubernetesSession: ProgramSessionHandler {
    private let connection: KubernetesConnection
    private let channel: any SessionChannel
    var setup: ProgramSetup
    private var stream: KubernetesStream?
    private var sessionPod: String?
    private var pump: Task<Void, Never>?

    init(connection: KubernetesConnection, channel: any SessionChannel) {
        self.connection = connection
        self.channel = channel
        let pod = connection.backend.config.pod
        setup = ProgramSetup(shellCommand: pod.shellCommand, subsystems: pod.subsystems, subsystemRefusal: "KUBERNETES_SUBSYSTEM_NOT_SUPPORTED")
    }

    private var backend: KubernetesBackend { connection.backend }
    private var pod: KubernetesConfig.Pod { backend.config.pod }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        guard let stream else { throw RequestRefused("KUBERNETES_PROGRAM_NOT_RUNNING", "cannot resize window, program is not running") }
        // `timeouts.window` bounds the resize message on the exec stream (with the agent it is a
        // link frame instead; docs/configuration.md, "kubernetes").
        let limit = backend.config.timeouts.window
        try await withDeadline(limit.duration, KubernetesError("KUBERNETES_TIMEOUT", "resizing the window took longer than \(limit)")) {
            try await stream.resize(columns: size.columns, rows: size.rows)
        }
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

    func startProgram(_ argv: [String]) async throws {
        let tty = setup.pty != nil
        let environment = setup.environment(over: connection.podSpecEnvironment)
        let body = KubernetesPodSpec.body(
            pod: pod, owner: connection.backend.identity, metadata: connection.metadata, command: argv, environment: environment, tty: tty, interactive: true)
        let name = try await connection.createPod(body).name
        sessionPod = name
        // Without the agent nothing can write the webhook's files; this says so in the log.
        try await connection.writeFiles(nil)
        let stream = try await backend.attach(pod: name, tty: tty)
        self.stream = stream
        if let pty = setup.pty { try? await stream.resize(columns: pty.columns, rows: pty.rows) }
        let backend = self.backend
        startPump(stream, tty: tty) { await Self.terminatedExitCode(backend, pod: name) }
    }

    /// The attach path's pump (`ProgramStreamPump`). Attach reports Success whatever the program
    /// did; the pod status has its exit code.
    private func startPump(_ stream: KubernetesStream, tty: Bool, podExit: @escaping @Sendable () async -> Int?) {
        pump = ProgramStreamPump.start(
            stream, exitCode: { note in (await podExit(), note.isEmpty ? "the program's exit code is unknown" : note) },
            channel: channel, tty: tty, logger: connection.logger, ended: "KUBERNETES_STREAM_ENDED", unknownExit: "KUBERNETES_EXIT_CODE_UNAVAILABLE")
    }

    /// The console container's exit code from the pod status.
    private static func terminatedExitCode(_ backend: KubernetesBackend, pod: String) async -> Int? {
        for _ in 0..<60 {
            if let status = try? await backend.client.getPod(namespace: backend.namespace, name: pod),
                let code = status.exitCode(container: backend.config.pod.consoleContainerNumber)
            {
                return code
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
        return nil
    }
}
