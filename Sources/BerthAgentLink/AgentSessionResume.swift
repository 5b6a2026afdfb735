import BerthAgentProtocol
import BerthConfig
import BerthCore
import NIOCore

/// Where sessions may be resumed (docs/agent-protocol.md, "Resumable sessions"): the owner is
/// the authenticated user, never anything the client sends.
public struct AgentResumeSettings: Sendable {
    public enum Policy: String, Sendable { case auto, menu, never }

    public var owner: String
    public var policy: Policy
    public var windowSeconds: UInt32
    public var bufferBytes: UInt32
    /// `security.maxSessions`: the user's detached sessions take slots too, until they expire.
    public var maxSessions: Int?

    public init(owner: String, policy: Policy, windowSeconds: UInt32, bufferBytes: UInt32, maxSessions: Int? = nil) {
        self.owner = owner
        self.policy = policy
        self.windowSeconds = windowSeconds
        self.bufferBytes = bufferBytes
        self.maxSessions = maxSessions
    }

    /// From the `persistence` section, for a container that outlives its connections; nil when
    /// resuming is off (`resume: never` or `resumeWindow: 0`).
    public init?(persistence: PersistenceConfig, owner: String, maxSessions: Int?) {
        guard persistence.resume != .never, persistence.resumeWindow.nanoseconds > 0,
            let policy = Policy(rawValue: persistence.resume.rawValue)
        else { return nil }
        let seconds = max(1, (persistence.resumeWindow.nanoseconds + 999_999_999) / 1_000_000_000)
        self.init(
            owner: owner, policy: policy, windowSeconds: UInt32(clamping: seconds), bufferBytes: UInt32(clamping: persistence.resumeBuffer),
            maxSessions: maxSessions)
    }

    var request: AgentResumable { AgentResumable(owner: owner, windowSeconds: windowSeconds, bufferBytes: bufferBytes) }
}

/// The choice a user makes among detached sessions: `nil` is a new shell.
public enum ResumeChoice {
    /// The menu's text: one numbered line per session, and 0 for a new shell.
    public static func menu(_ sessions: [AgentDetachedSession]) -> String {
        var text = "\r\nDetached sessions of yours in this container:\r\n"
        for (index, session) in sessions.enumerated() {
            text += "  \(index + 1)) \(printable(session.command)) (PID \(session.pid), detached \(session.detachedSeconds)s ago, ends in \(session.remainingSeconds)s)\r\n"
        }
        text += "  0) a new shell\r\nResume which? "
        return text
    }

    /// A session's command as the user sees it: control characters would act on their terminal.
    static func printable(_ command: String) -> String {
        let clipped = command.count > 60 ? String(command.prefix(57)) + "..." : command
        return String(clipped.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? "?" : Character($0) })
    }

    public enum Selection: Equatable {
        case newShell
        case session(Int)
        case invalid
    }

    /// The user's line (digits, surrounding blanks ignored) against `count` sessions.
    public static func parse(_ line: String, count: Int) -> Selection {
        let digits = line.split(separator: " ", omittingEmptySubsequences: true)
        guard digits.count == 1, digits[0].allSatisfy(\.isASCII), let number = Int(digits[0]), number >= 0, number <= count else { return .invalid }
        return number == 0 ? .newShell : .session(number - 1)
    }
}

extension AgentSession {
    /// Turns on resume for the link; an agent that cannot (older, or refusing) leaves the
    /// session as it always was.
    func enableResume(_ link: AgentLink, _ settings: AgentResumeSettings) async -> Bool {
        do {
            try await link.enableResume(settings.request)
            return true
        } catch {
            host.logger.log(.warning, "SESSION_RESUME_UNAVAILABLE", "sessions of this connection cannot be resumed: \(error)")
            return false
        }
    }

    /// A new program counts against `maxSessions` with the connection's open sessions and the
    /// user's detached ones (which hold their programs until they expire).
    func checkSessionLimit(_ link: AgentLink, _ limit: Int) async throws {
        let detached = (try? await link.detachedSessions().count) ?? 0
        guard host.openSessionCount + detached > limit else { return }
        throw RequestRefused("SESSION_LIMIT_DETACHED", "too many sessions (maxSessions \(limit)): \(detached) detached session(s) of yours wait to be resumed")
    }

    /// The user's detached sessions; none when they cannot be listed.
    func listDetached(_ link: AgentLink) async -> [AgentDetachedSession] {
        do {
            return try await link.detachedSessions()
        } catch {
            host.logger.log(.warning, "SESSION_RESUME_LIST_FAILED", "cannot list detached sessions: \(error)")
            return []
        }
    }

    /// Attaches `session` to this channel; nil (and a word to the user) when it is gone.
    func attach(_ link: AgentLink, _ session: AgentDetachedSession, terminal: WindowSize) async -> AgentProcess? {
        do {
            let process = try await link.attach(pid: session.pid, terminal: terminal, output: sessionChannel.output)
            BerthMetrics.sessionResumed()
            if let settings = host.resume { await DetachedSessionLedger.shared.resumed(owner: settings.owner, pid: session.pid) }
            await sessionChannel.record(.resumed(pid: session.pid))
            host.logger.log(
                .info, "SESSION_RESUMED", "a detached interactive program is attached to this channel",
                [LogKey.channelID: "\(sessionChannel.channelID)", "pid": "\(session.pid)"])
            return process
        } catch {
            // Gone meanwhile (ended, expired, or taken by another connection of the user).
            host.logger.log(.info, "SESSION_RESUME_FAILED", "cannot attach detached session \(session.pid): \(error)")
            try? await sessionChannel.writeStdout(ByteBuffer(string: "\r\nThat session has ended; starting a new shell.\r\n"))
            return nil
        }
    }

    /// After the shell request is answered: the menu, then the chosen session or a new shell.
    func menuThenStart(_ target: AgentSessionTarget, _ sessions: [AgentDetachedSession], argv: [String], terminal: WindowSize, limit: Int?) async {
        guard let (index, leftover) = await askUser(sessions) else {
            // The client went away during the menu.
            await sessionChannel.close()
            return
        }
        var resumed: (process: AgentProcess, leftover: ByteBuffer?)?
        if let index, let process = await attach(target.link, sessions[index], terminal: terminal) { resumed = (process, leftover) }
        do {
            if resumed == nil, let limit { try await checkSessionLimit(target.link, limit) }
            try await startOrAdopt(target, argv: argv, terminal: terminal, resumed: resumed)
        } catch {
            await failAnswered(error)
        }
    }

    /// Shows the menu and reads a choice (the terminal is raw: the digits are echoed here); a nil
    /// index is a new shell (0, Ctrl-C, Ctrl-D). nil: the client went away.
    private func askUser(_ sessions: [AgentDetachedSession]) async -> (Int?, ByteBuffer?)? {
        let channel = sessionChannel
        do {
            try await channel.writeStdout(ByteBuffer(string: ResumeChoice.menu(sessions)))
            var line = ""
            for await var chunk in channel.stdin {
                while let byte = chunk.readInteger(as: UInt8.self) {
                    switch byte {
                    case 0x0D, 0x0A:
                        switch ResumeChoice.parse(line, count: sessions.count) {
                        case .newShell:
                            try await channel.writeStdout(ByteBuffer(string: "\r\n"))
                            return (nil, chunk)
                        case .session(let index):
                            try await channel.writeStdout(ByteBuffer(string: "\r\n"))
                            return (index, chunk)
                        case .invalid:
                            line = ""
                            try await channel.writeStdout(ByteBuffer(string: "\r\nType a number from 0 to \(sessions.count), then Enter: "))
                        }
                    case 0x03, 0x04:
                        try await channel.writeStdout(ByteBuffer(string: "\r\n"))
                        return (nil, chunk)
                    case 0x7F, 0x08:
                        if !line.isEmpty {
                            line.removeLast()
                            try await channel.writeStdout(ByteBuffer(string: "\u{8} \u{8}"))
                        }
                    case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: " "):
                        guard line.utf8.count < 8 else { continue }
                        line.append(Character(Unicode.Scalar(byte)))
                        try await channel.writeStdout(ByteBuffer(bytes: [byte]))
                    default:
                        continue
                    }
                }
            }
        } catch {}
        return nil
    }
}
