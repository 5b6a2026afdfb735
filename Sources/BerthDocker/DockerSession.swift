import BerthConfig
import BerthCore
import Logging
import NIOCore

/// One session channel without the agent (`disableAgent`, images that lack it): in connection
/// mode the program is a plain exec in the connection's container, in session mode the main
/// process of a container of its own, attached to. No signals, no webhook files.
actor DockerSession: ProgramSessionHandler {
    private let connection: DockerConnection
    private let channel: any SessionChannel
    var setup: ProgramSetup
    private var program: Program?
    private var pump: Task<Void, Never>?

    private enum Program {
        case exec(String)
        case container(String)
    }

    init(connection: DockerConnection, channel: any SessionChannel) {
        self.connection = connection
        self.channel = channel
        setup = ProgramSetup(
            shellCommand: connection.execution.shellCommand, subsystems: connection.execution.subsystems,
            subsystemRefusal: "DOCKER_SUBSYSTEM_NOT_SUPPORTED")
    }

    private var execution: DockerExecutionConfig { connection.execution }
    private var client: DockerClient { connection.client }
    private var timeouts: DockerTimeoutsConfig { connection.backend.config.timeouts }

    // `timeouts.window` and `timeouts.signal` bound these engine calls; with the agent a window
    // size or a signal is a link frame and needs no engine call (docs/configuration.md, "docker").
    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        let client = client
        switch program {
        case .exec(let id)?:
            try await withTimeout(timeouts.window, "resizing the window") { try await client.resizeExec(id, columns: size.columns, rows: size.rows) }
        case .container(let id)?:
            try await withTimeout(timeouts.window, "resizing the window") { try await client.resizeContainer(id, columns: size.columns, rows: size.rows) }
        case nil: throw RequestRefused("DOCKER_PROGRAM_NOT_RUNNING", "cannot resize window, program is not running")
        }
    }

    func onSignal(requestID: UInt64, signal: String) async throws {
        let client = client
        switch program {
        case .container(let id)?:
            try await withTimeout(timeouts.signal, "sending signal \(signal)") { try await client.killContainer(id, signal: signal) }
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
        setup.environment(over: connection.environment)
    }

    func startProgram(_ argv: [String]) async throws {
        let tty = setup.pty != nil
        switch execution.mode {
        case .connection, .persistent:
            guard let container = connection.idleContainer else { throw DockerError("DOCKER_NO_CONTAINER", "the connection has no container") }
            let (client, environment, consoleSize) = (self.client, programEnvironment, setup.pty.map { ($0.rows, $0.columns) })
            let (exec, stream) = try await withTimeout(timeouts.commandStart, "starting the program") {
                let exec = try await client.createExec(containerID: container, command: argv, environment: environment, tty: tty)
                return (exec, try await client.startExec(exec, tty: tty, consoleSize: consoleSize))
            }
            program = .exec(exec)
            if let pty = setup.pty { try? await client.resizeExec(exec, columns: pty.columns, rows: pty.rows) }
            startPump(stream, tty: tty) { try await DockerExitCode.wait(client: client, exec: exec) }
        case .session:
            try await connection.backend.ensureImage()
            let network = try await connection.backend.userNetwork()
            let body = DockerContainerSpec.body(
                execution: execution, owner: connection.backend.identity, metadata: connection.metadata, command: argv,
                environment: setup.environment(over: connection.containerSpecEnvironment),
                tty: tty, interactive: true, consoleSize: setup.pty.map { ($0.rows, $0.columns) }, network: network)
            let id = try await connection.createContainer(body)
            connection.trackSessionContainer(id, active: true)
            program = .container(id)
            let stream = try await client.attachContainer(id, tty: tty)
            try await withTimeout(connection.backend.config.timeouts.containerStart, "starting the container") {
                try await self.client.startContainer(id)
            }
            if let pty = setup.pty { try? await client.resizeContainer(id, columns: pty.columns, rows: pty.rows) }
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

    /// The exec/attach path's pump (`ProgramStreamPump`); an exit code that cannot be read is
    /// reported as unknown.
    private func startPump(_ stream: DockerRawStream, tty: Bool, exitCode: @escaping @Sendable () async throws -> Int) {
        pump = ProgramStreamPump.start(
            stream,
            exitCode: { _ in
                do { return (try await exitCode(), "") } catch { return (nil, (error as? CodedError)?.message ?? "\(error)") }
            }, channel: channel, tty: tty, logger: connection.logger, ended: "DOCKER_STREAM_ENDED", unknownExit: "DOCKER_EXIT_CODE_UNAVAILABLE")
    }
}
