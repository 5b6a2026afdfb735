import BerthAgentProtocol
import BerthCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import BerthAgentLink

/// A host whose container outlives the connection: sessions of `owner` may be resumed.
final class ResumeHost: AgentSessionHost {
    let link: AgentLink
    let logger = Logger(label: "test")
    let shellCommand: [String]
    let subsystems: [String: String] = [:]
    let programEnvironment: [String: String] = [:]
    let loginAccount: AgentUser? = nil
    let resume: AgentResumeSettings?

    init(link: AgentLink, shell: [String], policy: AgentResumeSettings.Policy = .auto, maxSessions: Int? = nil) {
        self.link = link
        shellCommand = shell
        resume = AgentResumeSettings(owner: "alice", policy: policy, windowSeconds: 60, bufferBytes: 65536, maxSessions: maxSessions)
    }

    func sessionTarget() async throws -> AgentSessionTarget { AgentSessionTarget(link: link) }
    func sessionEnded(_ session: AgentSession) {}
}

/// Resumable sessions through `AgentSession` against the real agent (docs/agent-protocol.md,
/// "Resumable sessions"): a closed channel detaches its terminal program, the next interactive
/// shell resumes it (or offers the menu), exec never does.
@Suite(.serialized) struct ResumeSessionTests {
    static func counter(_ tag: String) -> [String] {
        ["/bin/sh", "-c", "echo \(tag)-$$; i=0; while :; do i=$((i+1)); echo $i; sleep 0.1; done"]
    }

    static let pty = PtyRequest(term: "xterm", columns: 80, rows: 24, widthPixels: 0, heightPixels: 0, modes: [:])

    static func numbers(_ text: String) -> [Int] {
        text.split(whereSeparator: \.isNewline).compactMap { Int($0) }
    }

    struct NotReached: Error, CustomStringConvertible { let description: String }

    /// Waits for `condition`; the time limit is only a backstop, so a test that cannot get there
    /// fails with what it saw instead of hanging.
    static func waitUntil(_ what: @autoclosure () -> String = "", _ condition: @escaping @Sendable () -> Bool) async throws {
        for _ in 0..<3000 {
            if condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw NotReached(description: "condition never held; \(what())")
    }

    /// Starts an interactive shell session on `host` and waits for its first output.
    static func shell(
        _ host: ResumeHost, input: [String]? = nil, size: (UInt32, UInt32) = (80, 24),
        until ready: @escaping @Sendable (String) -> Bool
    ) async throws -> (AgentSession, RecordingChannel) {
        let channel = RecordingChannel(input: input)
        let session = AgentSession(host: host, channel: channel)
        try await session.onPtyRequest(requestID: 0, PtyRequest(term: "xterm", columns: size.0, rows: size.1, widthPixels: 0, heightPixels: 0, modes: [:]))
        try await session.onShell(requestID: 1)
        try await waitUntil("output: \(channel.record.stdout.prefix(200).debugDescription) … \(channel.record.stdout.suffix(200).debugDescription)") {
            ready(channel.record.stdout)
        }
        return (session, channel)
    }

    @Test(.timeLimit(.minutes(2))) func aClosedChannelDetachesAndTheNextShellResumesIt() async throws {
        let agent = try await LocalAgent.start()
        let host = ResumeHost(link: agent.link, shell: Self.counter("first"))
        let (first, firstChannel) = try await Self.shell(host) { Self.numbers($0).contains(3) }
        let pidLine = firstChannel.record.stdout.split(separator: "\r\n").first { $0.hasPrefix("first-") }!
        await first.onClose()
        let listed = try await agent.link.detachedSessions()
        #expect(listed.map { "first-\($0.pid)" } == [String(pidLine)])

        // The same program, its output from the start (the replay), then live.
        let lastSeen = Self.numbers(firstChannel.record.stdout).last ?? 0
        let (_, secondChannel) = try await Self.shell(host, size: (91, 37)) { text in
            (Self.numbers(text).last ?? 0) >= lastSeen + 10
        }
        let text = secondChannel.record.stdout
        #expect(text.hasPrefix(String(pidLine) + "\r\n1\r\n"))
        let seen = Self.numbers(text)
        #expect(seen == Array(1...seen.last!))
        #expect(try await agent.link.detachedSessions().isEmpty)
        await agent.stop()
    }

    @Test(.timeLimit(.minutes(2))) func execNeverResumes() async throws {
        let agent = try await LocalAgent.start()
        let host = ResumeHost(link: agent.link, shell: Self.counter("first"))
        let (first, _) = try await Self.shell(host) { Self.numbers($0).contains(1) }
        await first.onClose()
        let channel = RecordingChannel(input: nil)
        let session = AgentSession(host: host, channel: channel)
        try await session.onPtyRequest(requestID: 0, Self.pty)
        try await session.onExec(requestID: 1, command: "echo fresh")
        await channel.waitClosed()
        #expect(channel.record.stdout == "fresh\r\n")
        #expect(try await agent.link.detachedSessions().count == 1)
        await agent.stop()
    }

    @Test(.timeLimit(.minutes(2))) func twoDetachedSessionsGiveTheMenuAndTheChoiceIsResumed() async throws {
        let agent = try await LocalAgent.start()
        let hostA = ResumeHost(link: agent.link, shell: Self.counter("A"))
        let hostB = ResumeHost(link: agent.link, shell: Self.counter("B"))
        let (a, _) = try await Self.shell(hostA) { $0.contains("A-") }
        let (b, _) = try await Self.shell(hostB) { $0.contains("B-") }
        await a.onClose()
        await b.onClose()
        let listed = try await agent.link.detachedSessions()
        #expect(listed.count == 2)
        // Sessions are listed longest detached first (then by PID): A is 1, B is 2.
        let (_, channel) = try await Self.shell(hostA, input: ["x", "2", "\r"]) { $0.contains("B-") && Self.numbers($0).count > 2 }
        let text = channel.record.stdout
        #expect(text.contains("1) /bin/sh -c echo A-$$;") && text.contains("2) /bin/sh -c echo B-$$;") && text.contains("0) a new shell"))
        #expect(!text.contains("A-\(listed[0].pid)"))
        #expect(try await agent.link.detachedSessions().map(\.pid) == [listed[0].pid])
        await agent.stop()
    }

    @Test(.timeLimit(.minutes(2))) func menuPolicyOffersANewShellToo() async throws {
        let agent = try await LocalAgent.start()
        let host = ResumeHost(link: agent.link, shell: Self.counter("kept"), policy: .menu)
        let (first, _) = try await Self.shell(host) { $0.contains("kept-") }
        await first.onClose()
        let kept = try await agent.link.detachedSessions()
        #expect(kept.count == 1)
        let fresh = ResumeHost(link: agent.link, shell: ["/bin/sh", "-c", "echo fresh-shell; exec sleep 300"], policy: .menu)
        let (second, channel) = try await Self.shell(fresh, input: ["0\r"]) { $0.contains("fresh-shell") }
        #expect(channel.record.stdout.contains("0) a new shell"))
        // The menu names the detached program; its output (the replay) never comes.
        #expect(!channel.record.stdout.contains("kept-\(kept[0].pid)"))
        #expect(try await agent.link.detachedSessions().count == 1)
        await second.onClose()
        #expect(try await agent.link.detachedSessions().count == 2)
        await agent.stop()
    }
}

extension ResumeSessionTests {
    /// `maxSessions` 1: the detached session holds the slot, so a new program is refused, but
    /// resuming it is not.
    @Test(.timeLimit(.minutes(2))) func detachedSessionsCountAgainstMaxSessions() async throws {
        let agent = try await LocalAgent.start()
        let host = ResumeHost(link: agent.link, shell: Self.counter("held"), maxSessions: 1)
        let (first, _) = try await Self.shell(host) { $0.contains("held-") }
        await first.onClose()
        let refused = AgentSession(host: host, channel: RecordingChannel(input: nil))
        await #expect(throws: RequestRefused("SESSION_LIMIT_DETACHED", "too many sessions (maxSessions 1): 1 detached session(s) of yours wait to be resumed")) {
            try await refused.onExec(requestID: 0, command: "echo over")
        }
        let (_, channel) = try await Self.shell(host) { $0.contains("held-") }
        #expect(channel.record.stdout.hasPrefix("held-"))
        await agent.stop()
    }
}

@Suite struct ResumeChoiceTests {
    @Test func choicesParse() {
        #expect(ResumeChoice.parse("0", count: 2) == .newShell)
        #expect(ResumeChoice.parse(" 2 ", count: 2) == .session(1))
        #expect(ResumeChoice.parse("3", count: 2) == .invalid)
        #expect(ResumeChoice.parse("", count: 2) == .invalid)
        #expect(ResumeChoice.parse("1 2", count: 2) == .invalid)
        #expect(ResumeChoice.parse("-1", count: 2) == .invalid)
    }

    /// A command is shown without control characters (they would act on the user's terminal).
    @Test func menuShowsCommandsSafely() {
        let text = ResumeChoice.menu([AgentDetachedSession(pid: 9, detachedSeconds: 4, remainingSeconds: 56, command: "vi \u{1B}]0;x\u{7}\u{9B}2J")])
        #expect(text.contains("1) vi ?]0;x??2J (PID 9, detached 4s ago, ends in 56s)"))
        #expect(!text.contains("\u{1B}"))
    }
}
