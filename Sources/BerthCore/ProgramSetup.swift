/// What a session channel's requests set up for its program, the same for every container
/// backend: the `env` requests, the terminal of `pty-req` (which also sets TERM), and the argv a
/// shell or subsystem request names (from the backend's configuration, given at creation).
public struct ProgramSetup: Sendable {
    public private(set) var environment: [String: String] = [:]
    public private(set) var pty: PtyRequest?
    public let shellCommand: [String]
    public let subsystems: [String: String]
    /// The message code of a subsystem request for a subsystem that is not configured.
    public let subsystemRefusal: MessageCode

    public init(shellCommand: [String], subsystems: [String: String], subsystemRefusal: MessageCode) {
        self.shellCommand = shellCommand
        self.subsystems = subsystems
        self.subsystemRefusal = subsystemRefusal
    }

    public mutating func setVariable(_ name: String, _ value: String) { environment[name] = value }

    public mutating func setTerminal(_ pty: PtyRequest) {
        self.pty = pty
        environment["TERM"] = pty.term
    }

    /// The program's environment: the container's (`base`), overridden by the session's.
    public func environment(over base: [String: String]) -> [String: String] {
        base.merging(environment) { _, session in session }
    }

    /// The configured program of subsystem `name`, or a refusal with the backend's code.
    public func subsystem(_ name: String) throws -> [String] {
        guard let path = subsystems[name], !path.isEmpty else { throw RequestRefused(subsystemRefusal, "subsystem \(name) is not configured") }
        return [path]
    }
}

/// A session handler that runs one program set up by `ProgramSetup`: the extension answers env,
/// pty-req, shell, exec and subsystem the same way for every backend, which only says how a
/// program starts.
public protocol ProgramSessionHandler: Actor, SessionChannelHandler {
    var setup: ProgramSetup { get set }
    func startProgram(_ argv: [String]) async throws
}

extension ProgramSessionHandler {
    public func onEnv(requestID: UInt64, name: String, value: String) async throws { setup.setVariable(name, value) }
    public func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws { setup.setTerminal(pty) }
    public func onShell(requestID: UInt64) async throws { try await startProgram(setup.shellCommand) }
    public func onExec(requestID: UInt64, command: String) async throws { try await startProgram(ShellWords.argv(for: command)) }

    public func onSubsystem(requestID: UInt64, name: String) async throws {
        try await startProgram(setup.subsystem(name))
    }
}
