import BerthAgentProtocol
import BerthCore
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import BerthAgentLink

/// The built agent (`serve --socket`) as a plain process on this machine, linked over its
/// socket exactly as Berth links to a local engine's container: sessions, many of them on one
/// link, and an agent that is killed while a program runs.
final class LocalAgent: Sendable {
    let process: Process
    let link: AgentLink
    let directory: String

    private init(process: Process, link: AgentLink, directory: String) {
        self.process = process
        self.link = link
        self.directory = directory
    }

    /// BERTH_AGENT_BIN, else the agent next to this package's debug build.
    static var binary: String {
        if let path = ProcessInfo.processInfo.environment["BERTH_AGENT_BIN"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug/berth-agent").path
    }

    /// `deep`: Berth's path to the socket is longer than a unix address holds (the agent, as in a
    /// container, binds it through a short path: here a symbolic link to the directory).
    static func start(deep: Bool = false, direct: Bool = true) async throws -> LocalAgent {
        let directory = "/tmp/berth-agent-test-" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        var linkDirectory = directory
        var agentDirectory = directory
        if deep {
            linkDirectory = directory + "/" + String(repeating: "d", count: 120)
            agentDirectory = directory + "/short"
            try FileManager.default.createDirectory(atPath: linkDirectory, withIntermediateDirectories: false)
            try FileManager.default.createSymbolicLink(atPath: agentDirectory, withDestinationPath: linkDirectory)
        }
        let secret = String(repeating: "5a", count: 32)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["serve", "--socket", agentDirectory + "/agent.sock", "--resume-dir", directory + "/resume", "--signal", "TERM"]
        process.environment = ["BERTH_AGENT_SECRET": secret, "PATH": "/usr/bin:/bin", "FROM_AGENT": "inherited"]
        try process.run()
        do {
            let link = try await AgentLink.connectSocket(
                path: linkDirectory + "/agent.sock", secret: Array(secret.utf8), timeout: .seconds(30),
                logger: Logger(label: "test"))
            link.allowDirectPipes(direct)
            return LocalAgent(process: process, link: link, directory: directory)
        } catch {
            process.terminate()
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// Whether the programs so far went through pipes Berth took, as `path` wants.
    func expectPath(_ path: BytePath) {
        #expect((link.directPipesTaken > 0) == path.direct)
    }

    func stop() async {
        await link.close()
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A session channel that records what the session does to it.
final class RecordingChannel: SessionChannel {
    let channelID: UInt64
    let connection = ConnectionMetadata(
        connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!,
        remoteAddress: RemoteAddress(ip: "127.0.0.1", port: 2222))
    let stdin: SessionInput
    private let state = NIOLockedValueBox(Record())
    private let closedStream: AsyncStream<Void>
    private let closedContinuation: AsyncStream<Void>.Continuation

    struct Record {
        var stdout = ""
        var stderr = ""
        var exitStatus: UInt32?
        var exitSignal: String?
        var eof = false
        var closed = false
        var fastWrites = 0
        var inputAcknowledged = 0
    }

    /// The fast output path (as the SSH front end's channels have), when `fast`; `slow` defers
    /// each write's completion to a later turn of the loop, as a client with a full window does.
    let output: SessionOutput?

    /// `input` is sent as stdin, then EOF; nil sends nothing and never EOF (like paramiko's exec).
    init(channelID: UInt64 = 0, input: [String]?, fast: Bool = false, slow: Bool = false) {
        self.channelID = channelID
        let state = self.state
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        output =
            !fast
            ? nil
            : SessionOutput(eventLoop: loop) { data, stream, promise in
                state.withLockedValue { record in
                    if stream == .stdout { record.stdout += String(buffer: data) } else { record.stderr += String(buffer: data) }
                    record.fastWrites += 1
                }
                if slow { loop.execute { promise?.succeed() } } else { promise?.succeed() }
            }
        let chunks = NIOLockedValueBox(input ?? [])
        let endless = input == nil
        let (never, _) = AsyncStream.makeStream(of: Void.self)
        // The fast path pushes the chunks on the loop and counts what the session acknowledges.
        let feed =
            !fast
            ? nil
            : SessionInputFeed(
                eventLoop: loop,
                begin: { receive in
                    guard !endless else { return }
                    for chunk in chunks.withLockedValue({ $0 }) { receive(ByteBuffer(string: chunk)) }
                    receive(nil)
                }, acknowledge: { bytes in state.withLockedValue { $0.inputAcknowledged += bytes } })
        stdin = SessionInput(feed: feed) {
            if endless {
                for await _ in never {}
                return nil
            }
            return chunks.withLockedValue { $0.isEmpty ? nil : ByteBuffer(string: $0.removeFirst()) }
        }
        (closedStream, closedContinuation) = AsyncStream.makeStream(of: Void.self)
    }

    var record: Record { state.withLockedValue { $0 } }

    func writeStdout(_ data: ByteBuffer) async throws { state.withLockedValue { $0.stdout += String(buffer: data) } }
    func writeStderr(_ data: ByteBuffer) async throws { state.withLockedValue { $0.stderr += String(buffer: data) } }
    func sendExitStatus(_ status: UInt32) async { state.withLockedValue { $0.exitStatus = $0.exitStatus ?? status } }
    func sendExitSignal(name: String, coreDumped: Bool, message: String) async { state.withLockedValue { $0.exitSignal = $0.exitSignal ?? name } }
    func closeWrite() async { state.withLockedValue { $0.eof = true } }

    func close() async {
        state.withLockedValue { $0.closed = true }
        closedContinuation.finish()
    }

    /// Returns once the session has closed the channel.
    func waitClosed() async {
        for await _ in closedStream {}
    }
}

/// The host side of sessions in connection mode: every program on one link.
final class LinkHost: AgentSessionHost {
    let link: AgentLink
    let logger = Logger(label: "test")
    let shellCommand = ["/bin/sh"]
    let subsystems: [String: String] = [:]
    let programEnvironment = ["FROM_HOST": "host"]
    /// The agent runs on this machine: never add accounts to its own /etc/passwd.
    let loginAccount: AgentUser? = nil
    let ended = NIOLockedValueBox(0)

    init(link: AgentLink) { self.link = link }

    func sessionTarget() async throws -> AgentSessionTarget { AgentSessionTarget(link: link) }
    func sessionEnded(_ session: AgentSession) { ended.withLockedValue { $0 += 1 } }
}

/// A host whose container is not ready until `gate` ends.
final class GatedHost: AgentSessionHost {
    let link: AgentLink
    let gate: AsyncStream<Void>
    let asked = NIOLockedValueBox(false)
    let logger = Logger(label: "test")
    let shellCommand = ["/bin/sh"]
    let subsystems: [String: String] = [:]
    let programEnvironment: [String: String] = [:]
    let loginAccount: AgentUser? = nil

    init(link: AgentLink, gate: AsyncStream<Void>) {
        self.link = link
        self.gate = gate
    }

    func sessionTarget() async throws -> AgentSessionTarget {
        asked.withLockedValue { $0 = true }
        for await _ in gate {}
        return AgentSessionTarget(link: link)
    }

    func sessionEnded(_ session: AgentSession) {}
}

/// The three ways a program's bytes move: through the session task, through the link straight
/// into the SSH channel (the fast path), and through pipes Berth took from the agent (direct).
enum BytePath: String, CaseIterable, Sendable {
    case task, fastLink, direct
    var fast: Bool { self != .task }
    var direct: Bool { self == .direct }
}

@Suite(.serialized) struct LocalAgentSessionTests {
    @Test(arguments: BytePath.allCases) func outputExitStatusStderrStdinAndEnvironment(path: BytePath) async throws {
        let fast = path.fast
        let agent = try await LocalAgent.start(direct: path.direct)
        let host = LinkHost(link: agent.link)
        let channel = RecordingChannel(input: ["from ", "stdin"], fast: fast)
        let session = AgentSession(host: host, channel: channel)
        try await session.onEnv(requestID: 0, name: "SENT", value: "by-client")
        try await session.onExec(requestID: 1, command: "cat; echo; echo $FROM_AGENT $FROM_HOST $SENT; echo err >&2; exit 42")
        await channel.waitClosed()
        await session.onClose()
        let record = channel.record
        #expect(record.stdout == "from stdin\ninherited host by-client\n")
        #expect(record.stderr == "err\n")
        #expect(record.exitStatus == 42 && record.exitSignal == nil && record.eof)
        #expect((record.fastWrites > 0) == fast)
        #expect(record.inputAcknowledged == (fast ? 10 : 0))
        agent.expectPath(path)
        await agent.stop()
    }

    /// 24 MiB through a client that takes each write a turn late: everything arrives, in order,
    /// before the exit status (the agent's credit, not memory, absorbs the difference).
    @Test(arguments: BytePath.allCases) func bulkOutputArrivesWholeBeforeTheExit(path: BytePath) async throws {
        let fast = path.fast
        let agent = try await LocalAgent.start(direct: path.direct)
        let channel = RecordingChannel(input: nil, fast: fast, slow: true)
        let session = AgentSession(host: LinkHost(link: agent.link), channel: channel)
        try await session.onExec(requestID: 0, command: "i=0; while [ $i -lt 24 ]; do head -c 1048575 /dev/zero | tr '\\0' x; echo $i; i=$((i+1)); done; exit 7")
        await channel.waitClosed()
        let record = channel.record
        let lines = record.stdout.split(separator: "\n")
        #expect(lines.count == 24)
        #expect(lines.enumerated().allSatisfy { index, line in line.count == 1048575 + "\(index)".count && line.hasSuffix("\(index)") })
        #expect(record.exitStatus == 7 && record.eof)
        #expect((record.fastWrites > 0) == fast)
        agent.expectPath(path)
        await agent.stop()
    }

    /// Thousands of one-byte writes to a client that takes each write late: the bytes arrive
    /// whole and in order before the exit, gathered rather than queued a write each.
    @Test(arguments: BytePath.allCases) func manyTinyWritesToASlowClient(path: BytePath) async throws {
        let fast = path.fast
        let agent = try await LocalAgent.start(direct: path.direct)
        let channel = RecordingChannel(input: nil, fast: fast, slow: true)
        let session = AgentSession(host: LinkHost(link: agent.link), channel: channel)
        try await session.onExec(requestID: 0, command: "i=0; while [ $i -lt 3000 ]; do printf '%d,' $i; i=$((i+1)); done; exit 3")
        await channel.waitClosed()
        #expect(channel.record.stdout == (0..<3000).map { "\($0)," }.joined())
        #expect(channel.record.exitStatus == 3)
        agent.expectPath(path)
        await agent.stop()
    }

    /// 8 MiB of stdin, far beyond the agent's credit: all of it reaches the program, then EOF,
    /// and (fast path) every byte is acknowledged so the client's window reopens.
    @Test(arguments: BytePath.allCases) func bulkInputReachesTheProgramWhole(path: BytePath) async throws {
        let fast = path.fast
        let agent = try await LocalAgent.start(direct: path.direct)
        let chunks = (0..<256).map { String(repeating: Character(UnicodeScalar(UInt8(97 + $0 % 26))), count: 32768) }
        let channel = RecordingChannel(input: chunks, fast: fast)
        let session = AgentSession(host: LinkHost(link: agent.link), channel: channel)
        try await session.onExec(requestID: 0, command: "md5sum")
        await channel.waitClosed()
        let expected = Insecure.MD5.hash(data: Data(chunks.joined().utf8)).map { String(format: "%02x", $0) }.joined()
        #expect(channel.record.stdout == "\(expected)  -\n")
        #expect(channel.record.exitStatus == 0)
        #expect(channel.record.inputAcknowledged == (fast ? 8 << 20 : 0))
        agent.expectPath(path)
        await agent.stop()
    }

    @Test func socketPathLongerThanAUnixAddress() async throws {
        let agent = try await LocalAgent.start(deep: true)
        let channel = RecordingChannel(input: [])
        let session = AgentSession(host: LinkHost(link: agent.link), channel: channel)
        try await session.onExec(requestID: 0, command: "echo deep")
        await channel.waitClosed()
        #expect(channel.record.stdout == "deep\n" && channel.record.exitStatus == 0)
        await agent.stop()
    }

    /// A hundred sessions one after the other on one link, none of which ever sends EOF.
    @Test(arguments: BytePath.allCases) func hundredSessionsOnOneLink(path: BytePath) async throws {
        let fast = path.fast
        let agent = try await LocalAgent.start(direct: path.direct)
        let host = LinkHost(link: agent.link)
        for number in 0..<100 {
            let channel = RecordingChannel(channelID: UInt64(number), input: nil, fast: fast)
            let session = AgentSession(host: host, channel: channel)
            try await session.onExec(requestID: 0, command: "echo \(number); exit \(number % 7)")
            await channel.waitClosed()
            await session.onClose()
            #expect(channel.record.stdout == "\(number)\n")
            #expect(channel.record.exitStatus == UInt32(number % 7))
        }
        #expect(host.ended.withLockedValue { $0 } == 100)
        #expect(agent.link.closedReason == nil)
        agent.expectPath(path)
        await agent.stop()
    }

    @Test func signalsAndExitSignals() async throws {
        let agent = try await LocalAgent.start()
        let host = LinkHost(link: agent.link)
        let own = RecordingChannel(input: [])
        let killsItself = AgentSession(host: host, channel: own)
        try await killsItself.onExec(requestID: 0, command: "kill -SEGV $$")
        await own.waitClosed()
        #expect(own.record.exitSignal == "SEGV" && own.record.exitStatus == nil)

        let sent = RecordingChannel(input: nil)
        let signalled = AgentSession(host: host, channel: sent)
        try await signalled.onExec(requestID: 0, command: "trap 'echo got-TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done")
        while !sent.record.stdout.contains("ready") { try await Task.sleep(for: .milliseconds(10)) }
        await signalled.terminate()
        await sent.waitClosed()
        #expect(sent.record.stdout == "ready\ngot-TERM\n" && sent.record.exitStatus == 3)
        await agent.stop()
    }

    /// Graceful stop while the session's container is still coming up: the program gets TERM as
    /// soon as it runs instead of never.
    @Test(.timeLimit(.minutes(1))) func terminateBeforeTheProgramRuns() async throws {
        let agent = try await LocalAgent.start()
        let gate = AsyncStream.makeStream(of: Void.self)
        let host = GatedHost(link: agent.link, gate: gate.stream)
        let channel = RecordingChannel(input: nil)
        let session = AgentSession(host: host, channel: channel)
        let exec = Task { try await session.onExec(requestID: 0, command: "/bin/sleep 300") }
        await waitFor { host.asked.withLockedValue { $0 } }
        await session.terminate()
        gate.continuation.finish()
        try await exec.value
        await channel.waitClosed()
        #expect(channel.record.exitSignal == "TERM")
        await agent.stop()
    }

    /// The agent dies while a program runs: the session says so on stderr, sends no exit status,
    /// closes the channel, and the link refuses new programs at once.
    @Test(arguments: BytePath.allCases) func killedAgentEndsTheSessionClearly(path: BytePath) async throws {
        let fast = path.fast
        let agent = try await LocalAgent.start(direct: path.direct)
        let host = LinkHost(link: agent.link)
        let channel = RecordingChannel(input: nil, fast: fast)
        let session = AgentSession(host: host, channel: channel)
        try await session.onExec(requestID: 0, command: "echo started $$; exec sleep 300")
        while !channel.record.stdout.hasSuffix("\n") { try await Task.sleep(for: .milliseconds(10)) }
        kill(agent.process.processIdentifier, SIGKILL)
        await channel.waitClosed()
        // The program outlives its agent here (in a container it goes with it).
        let program = pid_t(channel.record.stdout.split(separator: " ").last!.dropLast())!
        kill(program, SIGKILL)
        #expect(channel.record.stderr.contains("the agent in the container is gone"))
        #expect(channel.record.exitStatus == nil && channel.record.exitSignal == nil && channel.record.eof)
        await agent.link.waitClosed()
        await #expect(throws: AgentLinkError.self) { _ = try await agent.link.start(argv: ["/bin/true"], environment: [:], terminal: nil) }
        agent.expectPath(path)
        await agent.stop()
    }
}
