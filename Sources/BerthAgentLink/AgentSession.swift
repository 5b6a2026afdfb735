import BerthAgentProtocol
import BerthCore
import BerthForwarding
import Logging
import NIOCore

/// Where a session's program runs: the link, and what to do once the program is done (session
/// mode removes the session's own container).
public struct AgentSessionTarget: Sendable {
    public let link: AgentLink
    public let release: (@Sendable () async -> Void)?

    public init(link: AgentLink, release: (@Sendable () async -> Void)? = nil) {
        self.link = link
        self.release = release
    }
}

/// What a backend provides to the one session implementation: its configuration and where
/// programs run. Everything else about a session is the same for Docker and Kubernetes.
public protocol AgentSessionHost: Sendable {
    var shellCommand: [String] { get }
    var subsystems: [String: String] { get }
    /// The container's environment for programs (webhook environment, exposed metadata).
    var programEnvironment: [String: String] { get }
    /// Who programs run as; nil: the container's own user.
    var loginAccount: AgentUser? { get }
    var logger: Logger { get }
    /// A link for a new program: the connection's, or (session mode) a new container's.
    func sessionTarget() async throws -> AgentSessionTarget
    func sessionEnded(_ session: AgentSession)
    /// Set where a terminal program may outlive the connection: the container outlives it.
    var resume: AgentResumeSettings? { get }
    /// The connection's session channels now open (this one included).
    var openSessionCount: Int { get }
}

extension AgentSessionHost {
    public var resume: AgentResumeSettings? { nil }
    public var openSessionCount: Int { 1 }
}

/// One session channel on the agent link: the program's bytes between the SSH channel and the
/// agent, with the agent's credit holding back a program whose client is slow and the client's
/// window holding back a client whose program is slow.
public actor AgentSession: ProgramSessionHandler {
    let host: any AgentSessionHost
    private let channel: any SessionChannel
    var sessionChannel: any SessionChannel { channel }
    /// The resume menu was shown: the client's input is read through the sequence from then on.
    var menuShown = false
    public var setup: ProgramSetup
    private var process: AgentProcess?
    private var target: AgentSessionTarget?
    private var pump: Task<Void, Never>?
    private var released = false
    private var terminating = false
    private var isShell = false
    /// The program may outlive the channel (`detach` instead of `close` when it ends).
    private var resumable = false
    /// X11 and agent listeners of this session (AgentSessionForwarding.swift).
    var sessionForwards: [ForwardMultiplexer] = []
    var agentSocketDirectory: String?
    var x11Display: String?

    public init(host: any AgentSessionHost, channel: any SessionChannel) {
        self.host = host
        self.channel = channel
        setup = ProgramSetup(shellCommand: host.shellCommand, subsystems: host.subsystems, subsystemRefusal: "SESSION_SUBSYSTEM_NOT_SUPPORTED")
    }

    public func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        guard let process else { throw RequestRefused("SESSION_PROGRAM_NOT_RUNNING", "cannot resize window, program is not running") }
        process.resize(size)
    }

    public func onSignal(requestID: UInt64, signal: String) async throws {
        guard let process else { throw RequestRefused("SESSION_PROGRAM_NOT_RUNNING", "cannot send signal, program is not running") }
        guard AgentSignals.canonical(signal) != nil else { throw RequestRefused("SESSION_SIGNAL_UNKNOWN", "unknown signal \(signal)") }
        process.signal(signal)
    }

    public func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    /// Only an interactive shell resumes a detached session; exec never does.
    public func onShell(requestID: UInt64) async throws {
        isShell = true
        try await startProgram(setup.shellCommand)
    }

    public func onClose() async {
        host.sessionEnded(self)
        if resumable, let process {
            // A program that has ended has nothing to detach.
            if process.detach() {
                BerthMetrics.sessionDetached()
                if let settings = host.resume {
                    await DetachedSessionLedger.shared.detached(
                        owner: settings.owner, pid: process.pid, window: .seconds(Int64(settings.windowSeconds)), logger: host.logger)
                }
                await channel.record(.detached(pid: process.pid))
                host.logger.log(
                    .info, "SESSION_DETACHED", "the interactive program keeps running, detached, for the user to resume",
                    [LogKey.channelID: "\(channel.channelID)", "pid": "\(process.pid)"])
            }
        } else {
            process?.close()
        }
        pump?.cancel()
        await endSessionForwards()
        await release()
    }

    /// Graceful stop: the program gets TERM and may still finish its output. A program still
    /// starting (its container slow to come up) gets it as soon as it runs.
    public func terminate() {
        terminating = true
        process?.signal("TERM")
    }

    private func release() async {
        guard !released else { return }
        released = true
        await target?.release?()
    }

    public func startProgram(_ argv: [String]) async throws {
        guard process == nil else { throw RequestRefused("SESSION_PROGRAM_RUNNING", "a program is already running on this channel") }
        let target = try await host.sessionTarget()
        self.target = target
        if let account = host.loginAccount {
            do {
                _ = try await target.link.useAccount(account)
            } catch {
                // As sshd does when it cannot become the user: the request succeeds, the reason
                // goes to stderr (the user's only clue; the detail is in the log) and the status is 1.
                let message = (error as? CodedError)?.message ?? "\(error)"
                host.logger.log(.error, "AGENT_USER_FAILED", "cannot start the program: \(message)", [LogKey.channelID: "\(channel.channelID)"])
                let channel = self.channel
                let logger = host.logger
                pump = Task {
                    try? await channel.writeStderr(
                        ByteBuffer(
                            string: UserNotice.line(
                                "cannot run your programs as \(account.name) in the container; the server's log has the reason",
                                code: "AGENT_USER_FAILED", logger: logger)))
                    await channel.sendExitStatus(1)
                    await channel.closeWrite()
                    await channel.close()
                    await self.release()
                }
                return
            }
        }
        let terminal = setup.pty.map { WindowSize(columns: $0.columns, rows: $0.rows, widthPixels: $0.widthPixels, heightPixels: $0.heightPixels) }
        var resumed: (process: AgentProcess, leftover: ByteBuffer?)?
        var limit: Int?
        if let settings = host.resume {
            let enabled = await enableResume(target.link, settings)
            resumable = enabled && terminal != nil
            limit = enabled ? settings.maxSessions : nil
            if let terminal, resumable, isShell, settings.policy != .never {
                let sessions = await listDetached(target.link)
                if settings.policy == .auto && sessions.count == 1 {
                    resumed = await attach(target.link, sessions[0], terminal: terminal).map { ($0, nil) }
                } else if !sessions.isEmpty {
                    // The client sees output only once this request is answered, so the menu
                    // (and the program chosen there) comes after it.
                    menuShown = true
                    pump = Task { await self.menuThenStart(target, sessions, argv: argv, terminal: terminal, limit: limit) }
                    return
                }
            }
        }
        do {
            if resumed == nil, let limit { try await checkSessionLimit(target.link, limit) }
            try await startOrAdopt(target, argv: argv, terminal: terminal, resumed: resumed)
        } catch {
            await release()
            throw error
        }
    }

    /// Runs `argv`, or goes on with the resumed program, and starts moving its bytes.
    func startOrAdopt(_ target: AgentSessionTarget, argv: [String], terminal: WindowSize?, resumed: (process: AgentProcess, leftover: ByteBuffer?)?) async throws {
        let process: AgentProcess
        if let resumed {
            process = resumed.process
        } else {
            process = try await target.link.start(
                argv: argv, environment: setup.environment(over: host.programEnvironment),
                terminal: terminal, output: channel.output)
        }
        self.process = process
        // After the menu the client's input is read through the sequence; the rest follows from there.
        startPump(process, tty: setup.pty != nil, leftover: resumed?.leftover, sequenceInput: menuShown)
        if terminating { process.signal("TERM") }
    }

    /// A failure after the request was answered: the user gets the reason on stderr and status 1.
    func failAnswered(_ error: Error) async {
        let message = (error as? CodedError)?.message ?? "\(error)"
        let code: MessageCode = (error as? CodedError)?.code ?? "AGENT_START_FAILED"
        host.logger.log(.error, code, "cannot start the program: \(message)", [LogKey.channelID: "\(channel.channelID)"])
        try? await channel.writeStderr(ByteBuffer(string: UserNotice.line(message, code: code, logger: host.logger)))
        await channel.sendExitStatus(1)
        await channel.closeWrite()
        await channel.close()
        await release()
    }

    /// Copies stdin in and output out; after the exit (which follows all output) reports it,
    /// then EOF, then closes the channel.
    private func startPump(_ process: AgentProcess, tty: Bool, leftover: ByteBuffer? = nil, sequenceInput: Bool = false) {
        let channel = self.channel
        let logger = host.logger
        // A terminal has no EOF (sshd ignores it on a pty too).
        let pushed = sequenceInput ? false : process.takeInput(channel.stdin, eof: !tty)
        pump = Task {
            let input = Task {
                guard !pushed else { return }
                if let leftover, leftover.readableBytes > 0 {
                    do { try await process.write(leftover) } catch { return }
                }
                for await chunk in channel.stdin {
                    do { try await process.write(chunk) } catch { return }
                }
                if !tty { process.closeInput() }
            }
            var ending: AgentProcessEvent?
            do {
                for await event in process.events {
                    switch event {
                    case .stdout(let bytes):
                        try await channel.writeStdout(bytes)
                        process.consumed(bytes.readableBytes)
                    case .stderr(let bytes):
                        try await channel.writeStderr(bytes)
                        process.consumed(bytes.readableBytes)
                    case .exit, .lost:
                        ending = event
                    case .clientGone(let reason):
                        logger.log(.debug, "SESSION_CLIENT_GONE", "cannot write to the client: \(reason)", [LogKey.channelID: "\(channel.channelID)"])
                    }
                }
            } catch {
                logger.log(.debug, "SESSION_CLIENT_GONE", "cannot write to the client: \(error)", [LogKey.channelID: "\(channel.channelID)"])
            }
            input.cancel()
            if Task.isCancelled { return }
            switch ending {
            case .exit(.status(let code))?:
                await channel.sendExitStatus(code)
            case .exit(.signal(let name, let coreDumped))?:
                await channel.sendExitSignal(name: name, coreDumped: coreDumped, message: "")
            case .lost(let reason)?:
                logger.log(.warning, "SESSION_AGENT_LOST", "the agent went away while the program ran: \(reason)", [LogKey.channelID: "\(channel.channelID)"])
                try? await channel.writeStderr(
                    ByteBuffer(
                        string: UserNotice.line(
                            "the agent in the container is gone; the program's exit status is unknown",
                            code: "SESSION_AGENT_LOST", logger: logger)))
            default:
                break
            }
            await channel.closeWrite()
            await channel.close()
            await self.release()
        }
    }
}

/// Port forwarding through forwarding channels of the connection's agent link, the same for
/// every backend: a backend says only why forwarding cannot work (`forwardingProblem`).
public protocol AgentForwardingHost: SSHConnectionHandler {
    var forwards: ForwardRegistry { get }
    var link: AgentLink? { get }
    var logger: Logger { get }
    var forwardingProblem: String? { get }
}

extension AgentForwardingHost {
    public func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        try await forwards.direct(request, channel: channel, problem: forwardingProblem, logger: logger) { try await self.startForwardServer(role: $0) }
    }

    public func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        try await forwards.reverse(forward, opener: opener, problem: forwardingProblem, logger: logger) { try await self.startForwardServer(role: $0) }
    }

    public func onCancelReverseForward(_ forward: ReverseForward) async throws {
        try await forwards.cancel(forward)
    }

    public func onDirectStreamLocal(path: String, channel: any ForwardChannel) async throws {
        try await forwards.directSocket(path: path, channel: channel, problem: forwardingProblem, logger: logger) { try await self.startForwardServer(role: $0) }
    }

    public func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws {
        try await forwards.reverseSocket(path: path, opener: opener, problem: forwardingProblem, logger: logger) { try await self.startForwardServer(role: $0) }
    }

    public func onCancelStreamLocalForward(path: String) async throws {
        try await forwards.cancelSocket(path: path)
    }

    func startForwardServer(role: String) async throws -> ForwardMultiplexer {
        guard let link else { throw ForwardError.agentEnded }
        // The agent dials and binds unix sockets as the link's account: name it before the
        // first forward, which may come before any program (ssh -N).
        if let account = (self as? any AgentSessionHost)?.loginAccount { _ = try await link.useAccount(account) }
        return try await link.startForwardServer(role: role, logger: logger)
    }
}
