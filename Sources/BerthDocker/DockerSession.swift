import BerthConfig
import BerthCore
import Logging
import NIOCore

/// One session channel without the agent (`disableAgent`, images that lack it): in connection
/// mode the program is a plain exec in the connection's container, in session mode the main
/// process of a container of its own, attached to. No signals, no webhook files.
actor DockerSession: SessionChannelHandler {
    private let connection: DockerConnection
    private let channel: any SessionChannel
    private var environment: [String: String] = [:]
    private var pty: PtyRequest?
    private var program: Program?
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
            throw RequestRefused("DOCKER_SIGNAL_UNAVAILABLE", "signals need the guest agent (docker.execution.disableAgent is set)")
        case nil:
            throw RequestRefused("DOCKER_PROGRAM_NOT_RUNNING", "cannot send signal, program is not running")
        }
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    func onClose() async {
        if case .container(let id)? = program {
            await connection.remove(id)
            connection.trackSessionContainer(id, active: false)
        }
        pump?.cancel()
    }

    private var programEnvironment: [String: String] {
        connection.environment.merging(environment) { _, session in session }
    }

    private func start(_ argv: [String]) async throws {
        let tty = pty != nil
        switch execution.mode {
        case .connection:
            guard let container = connection.idleContainer else { throw DockerError("DOCKER_NO_CONTAINER", "the connection has no container") }
            let exec = try await client.createExec(containerID: container, command: argv, environment: programEnvironment, tty: tty)
            let stream = try await client.startExec(exec, tty: tty, consoleSize: pty.map { ($0.rows, $0.columns) })
            program = .exec(exec)
            if let pty { try? await client.resizeExec(exec, columns: pty.columns, rows: pty.rows) }
            let client = self.client
            startPump(stream, tty: tty) { try await DockerExitCode.wait(client: client, exec: exec) }
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
            startPump(stream, tty: tty) {
                let code = try await client.waitContainer(id)
                await connection.remove(id)
                connection.trackSessionContainer(id, active: false)
                return code
            }
        }
    }

    /// Copies stdin in and output out; after the output ends (all of it forwarded), reports the
    /// exit status, then EOF, then closes the channel.
    private func startPump(_ stream: DockerRawStream, tty: Bool, exitCode: @escaping @Sendable () async throws -> Int) {
        let channel = self.channel
        let logger = connection.logger
        pump = Task {
            let input = Task {
                for await chunk in channel.stdin {
                    do { try await stream.write(chunk) } catch { return }
                }
                // A terminal has no EOF (sshd ignores it on a pty too); half-closing a TTY
                // stream makes the engine drop the program's output.
                if !tty { await stream.closeWrite() }
            }
            do {
                for try await piece in stream.output {
                    switch piece {
                    case .stdout(let bytes): try await channel.writeStdout(bytes)
                    case .stderr(let bytes): try await channel.writeStderr(bytes)
                    }
                }
            } catch where !Task.isCancelled {
                logger.log(.info, "DOCKER_STREAM_ENDED", "program stream ended: \(error)", [LogKey.channelID: "\(channel.channelID)"])
            } catch {}
            input.cancel()
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
