import BerthConfig
import BerthCore
import Logging
import NIOCore

/// One session channel on the Docker backend. In connection mode the program is an exec in
/// the connection's container, started through the agent so that signals reach it; in session
/// mode it is the main process of a container of its own.
actor DockerSession: SessionChannelHandler {
    private let connection: DockerConnection
    private let channel: any SessionChannel
    private var environment: [String: String] = [:]
    private var pty: PtyRequest?
    private var program: Program?
    private var pid: UInt32?
    private var pump: Task<Void, Never>?

    private enum Program {
        case exec(String)
        case container(String)
    }

    init(connection: DockerConnection, channel: any SessionChannel) {
        self.connection = connection
        self.channel = channel
    }

    private var execution: DockerExecutionConfig { connection.execution }
    private var client: DockerClient { connection.client }
    private var useAgent: Bool { !execution.disableAgent }

    func onEnv(requestID: UInt64, name: String, value: String) async throws { environment[name] = value }

    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {
        self.pty = pty
        environment["TERM"] = pty.term
    }

    func onShell(requestID: UInt64) async throws { try await start(execution.shellCommand) }
    func onExec(requestID: UInt64, command: String) async throws { try await start(ShellWords.argv(for: command)) }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        guard let path = execution.subsystems[name], !path.isEmpty else {
            throw RequestRefused("DOCKER_SUBSYSTEM_NOT_SUPPORTED", "subsystem \(name) is not configured")
        }
        try await start([path])
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        switch program {
        case .exec(let id)?: try await client.resizeExec(id, columns: size.columns, rows: size.rows)
        case .container(let id)?: try await client.resizeContainer(id, columns: size.columns, rows: size.rows)
        case nil: throw RequestRefused("DOCKER_PROGRAM_NOT_RUNNING", "cannot resize window, program is not running")
        }
    }

    func onSignal(requestID: UInt64, signal: String) async throws {
        switch program {
        case .container(let id)?:
            try await client.killContainer(id, signal: signal)
        case .exec?:
            try await sendThroughAgent(signal)
        case nil:
            throw RequestRefused("DOCKER_PROGRAM_NOT_RUNNING", "cannot send signal, program is not running")
        }
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    func onClose() async {
        // The client is gone: stop what still runs so nothing outlives the channel.
        switch program {
        case .exec?: try? await sendThroughAgent("KILL")
        case .container(let id)?:
            await connection.remove(id)
            connection.trackSessionContainer(id, active: false)
        case nil: break
        }
        pump?.cancel()
    }

    private func sendThroughAgent(_ signal: String) async throws {
        guard useAgent, let pid, let container = connection.idleContainer else {
            throw RequestRefused("DOCKER_SIGNAL_UNAVAILABLE", "signals need the guest agent (docker.execution.disableAgent is set)")
        }
        let exec = try await client.createExec(containerID: container, command: [execution.agentPath, "signal", "--pid", String(pid), "--signal", signal], tty: false, attachStdin: false)
        let stream = try await client.startExec(exec, tty: false)
        for try await _ in stream.output {}
        let code = try await DockerExitCode.wait(client: client, exec: exec)
        guard code == 0 else { throw RequestRefused("DOCKER_SIGNAL_FAILED", "the agent could not deliver \(signal) (exit code \(code))") }
    }

    private var programEnvironment: [String: String] {
        connection.environment.merging(environment) { _, session in session }
    }

    private func start(_ argv: [String]) async throws {
        let tty = pty != nil
        switch execution.mode {
        case .connection:
            guard let container = connection.idleContainer else { throw DockerError("DOCKER_NO_CONTAINER", "the connection has no container") }
            // With a terminal the agent holds the program until Berth has sized the terminal, so
            // the program's first look at it already sees the client's size.
            let holdForResize = useAgent && tty
            let command = useAgent ? [execution.agentPath, "console"] + (holdForResize ? ["--wait"] : []) + ["--pid", "--"] + argv : argv
            let exec = try await client.createExec(containerID: container, command: command, environment: programEnvironment, tty: tty)
            let stream = try await client.startExec(exec, tty: tty, consoleSize: pty.map { ($0.rows, $0.columns) })
            program = .exec(exec)
            let client = self.client
            let pty = self.pty
            var release: (@Sendable () async throws -> Void)?
            if holdForResize {
                release = { @Sendable in
                    if let pty { try? await client.resizeExec(exec, columns: pty.columns, rows: pty.rows) }
                    try await stream.write(ByteBuffer(string: "\n"))
                }
            }
            if !holdForResize, let pty { try? await client.resizeExec(exec, columns: pty.columns, rows: pty.rows) }
            startPump(stream, tty: tty, stripPID: useAgent, afterPID: release) { try await DockerExitCode.wait(client: client, exec: exec) }
        case .session:
            try await connection.backend.ensureImage()
            let body = DockerContainerSpec.body(execution: execution, metadata: connection.metadata, command: argv, environment: programEnvironment,
                                                tty: tty, interactive: true, consoleSize: pty.map { ($0.rows, $0.columns) })
            let id = try await connection.createContainer(body)
            connection.trackSessionContainer(id, active: true)
            program = .container(id)
            let stream = try await client.attachContainer(id, tty: tty)
            try await withTimeout(connection.backend.config.timeouts.containerStart, "starting the container") {
                try await self.client.startContainer(id)
            }
            if let pty { try? await client.resizeContainer(id, columns: pty.columns, rows: pty.rows) }
            let client = self.client
            let connection = self.connection
            startPump(stream, tty: tty, stripPID: false, afterPID: nil) {
                let code = try await client.waitContainer(id)
                await connection.remove(id)
                connection.trackSessionContainer(id, active: false)
                return code
            }
        }
    }

    private func recordPID(_ pid: UInt32) { self.pid = pid }

    /// Copies stdin in and output out; after the output ends (all of it forwarded), reports the
    /// exit status, then EOF, then closes the channel.
    private func startPump(_ stream: DockerRawStream, tty: Bool, stripPID: Bool, afterPID: (@Sendable () async throws -> Void)?,
                           exitCode: @escaping @Sendable () async throws -> Int) {
        let channel = self.channel
        let logger = connection.logger
        pump = Task {
            let copyInput: @Sendable () -> Task<Void, Never> = {
                Task {
                    for await chunk in channel.stdin {
                        do { try await stream.write(chunk) } catch { return }
                    }
                    // A terminal has no EOF (sshd ignores it on a pty too); half-closing a TTY
                    // stream makes the engine drop the program's output.
                    if !tty { await stream.closeWrite() }
                }
            }
            // Client input waits until a held program has been released.
            var input: Task<Void, Never>? = afterPID == nil ? copyInput() : nil
            var stdout = ProgramStdout(stripPID: stripPID, tty: tty)
            do {
                for try await piece in stream.output {
                    switch piece {
                    case .stdout(let bytes):
                        guard let pid = try await stdout.relay(bytes, to: channel) else { continue }
                        self.recordPID(pid)
                        if let afterPID {
                            try await afterPID()
                            input = copyInput()
                        }
                    case .stderr(let bytes):
                        try await channel.writeStderr(bytes)
                    }
                }
            } catch where !Task.isCancelled {
                logger.log(.info, "DOCKER_STREAM_ENDED", "program stream ended: \(error)", [LogKey.channelID: "\(channel.channelID)"])
            } catch {}
            input?.cancel()
            // The channel is already closed (onClose); there is nobody to report to.
            if Task.isCancelled { return }
            let status: Int
            do {
                status = try await exitCode()
            } catch {
                logger.log(.warning, "DOCKER_EXIT_CODE_UNAVAILABLE", "\(error)", [LogKey.channelID: "\(channel.channelID)"])
                try? await channel.writeStderr(ByteBuffer(string: "Berth: \((error as? CodedError)?.message ?? "\(error)")\r\n"))
                status = 137
            }
            await channel.sendExitStatus(UInt32(truncatingIfNeeded: status))
            await channel.closeWrite()
            await channel.close()
        }
    }
}
