import BerthAgentProtocol
import BerthConfig
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import BerthAgentLink

/// The link against a scripted agent: frames Berth sends are captured, the agent's are fed in
/// arbitrary pieces.
final class ScriptedAgent: Sendable {
    let sent = NIOLockedValueBox<[AgentFrame]>([])
    let closed = NIOLockedValueBox(false)

    func io() -> AgentLinkIO {
        AgentLinkIO(
            send: { frame in
                var reader = AgentFrameReader()
                let frames = (try? reader.feed(Array(frame.readableBytesView))) ?? []
                self.sent.withLockedValue { $0 += frames }
            }, close: { self.closed.withLockedValue { $0 = true } })
    }

    func frames(of type: AgentFrameType) -> [AgentFrame] { sent.withLockedValue { $0.filter { $0.type == type } } }
}

/// Feeds `bytes` to the link split at every `size` bytes.
func feed(_ link: AgentLink, _ frames: [AgentFrame], pieces size: Int) {
    let bytes = frames.flatMap { $0.encoded() }
    var offset = 0
    while offset < bytes.count {
        let end = min(offset + size, bytes.count)
        link.receive(ByteBuffer(bytes: bytes[offset..<end]))
        offset = end
    }
}

func waitFor(_ condition: @escaping @Sendable () -> Bool) async {
    while !condition() { await Task.yield() }
}

@Suite struct AgentLinkTests {
    let logger = Logger(label: "test")

    /// An agent that never answers: the deadline ends the wait (the link is then closed and the
    /// caller falls back or fails) instead of hanging the connection.
    @Test(.timeLimit(.minutes(1))) func helloTimesOutWhenTheAgentNeverAnswers() async throws {
        let agent = ScriptedAgent()
        let link = AgentLink(kind: "test", io: agent.io(), logger: logger)
        await #expect(throws: AgentLinkError("AGENT_LINK_NO_HELLO", "the agent did not answer within 0.2 seconds")) {
            try await link.hello(secret: [], timeout: .milliseconds(200))
        }
    }

    /// Output frames of a channel that arrive together are passed on joined; other frames, other
    /// channels and stdout next to stderr are not.
    @Test func outputFramesArrivingTogetherAreJoined() {
        func frame(_ type: AgentFrameType, _ channel: UInt32, _ text: String) -> (AgentFrameHeader, ByteBuffer) {
            (AgentFrameHeader(type: type, channel: channel, payloadLength: text.utf8.count), ByteBuffer(string: text))
        }
        let merged = AgentLink.merged([
            frame(.output, 1, "ab"), frame(.output, 1, "cd"), frame(.output, 2, "x"), frame(.output, 1, "ef"),
            frame(.errorOutput, 1, "E"), frame(.errorOutput, 1, "F"), frame(.output, 1, "g"), frame(.window, 1, "1234"), frame(.window, 1, "5678"),
        ])
        #expect(
            merged.map { "\($0.0.type):\($0.0.channel):\(String(buffer: $0.1)):\($0.0.payloadLength)" } == [
                "output:1:abcd:4", "output:2:x:1", "output:1:ef:2", "errorOutput:1:EF:2", "output:1:g:1", "window:1:1234:4", "window:1:5678:4",
            ])
    }

    /// Joining stops once a piece reaches the limit: big frames go on as they came, uncopied.
    @Test func joinedPiecesStopGrowingAtTheLimit() {
        let big = String(repeating: "b", count: AgentLink.joinLimit)
        let frames = ["a", "a", big, "c", big, "d"].map { text in
            (AgentFrameHeader(type: .output, channel: 1, payloadLength: text.utf8.count), ByteBuffer(string: text))
        }
        let sizes = AgentLink.merged(frames).map(\.1.readableBytes)
        #expect(sizes == [2 + AgentLink.joinLimit, 1 + AgentLink.joinLimit, 1])
        #expect(sizes.reduce(0, +) == frames.reduce(0) { $0 + $1.1.readableBytes })
    }

    @Test(arguments: [1, 7, 4096])
    func programOutputExitAndCreditInAnyChunking(size: Int) async throws {
        let agent = ScriptedAgent()
        let link = AgentLink(kind: "test", io: agent.io(), logger: logger)
        async let hello: Void = link.hello(secret: [1, 2, 3], timeout: .seconds(30))
        await waitFor { !agent.frames(of: .hello).isEmpty }
        #expect(try AgentHello(decoding: agent.frames(of: .hello)[0].payload).secret == [1, 2, 3])
        feed(link, [AgentFrame(.hello, channel: 0, payload: AgentHelloReply(pid: 1).encoded())], pieces: size)
        try await hello

        async let started = link.start(argv: ["/bin/sh"], environment: ["B": "2", "A": "1"], terminal: nil)
        await waitFor { !agent.frames(of: .start).isEmpty }
        let request = try AgentProcessStart(decoding: agent.frames(of: .start)[0].payload)
        #expect(request.argv == ["/bin/sh"] && request.environment == ["A=1", "B=2"] && request.terminal == nil)
        let channel = agent.frames(of: .start)[0].channel
        feed(
            link,
            [
                AgentFrame(.started, channel: channel, payload: AgentProcessStarted(pid: 42, inputWindow: 5).encoded()),
                AgentFrame(.output, channel: channel, payload: Array("hello".utf8)),
                AgentFrame(.errorOutput, channel: channel, payload: Array("oops".utf8)),
                AgentFrame(.exit, channel: channel, payload: AgentExit.signal(name: "TERM", coreDumped: false).encoded()),
            ], pieces: size)
        let process = try await started
        #expect(process.pid == 42)
        var seen: [String] = []
        for await event in process.events {
            switch event {
            case .stdout(let bytes): seen.append("out:" + String(buffer: bytes)); process.consumed(bytes.readableBytes)
            case .stderr(let bytes): seen.append("err:" + String(buffer: bytes))
            case .exit(let exit): seen.append("exit:\(exit)")
            case .lost(let reason): seen.append("lost:\(reason)")
            case .clientGone(let reason): seen.append("gone:\(reason)")
            }
        }
        #expect(seen == ["out:hello", "err:oops", "exit:signal(name: \"TERM\", coreDumped: false)"])
        // Credit goes back in quarters of the window, not per chunk.
        #expect(agent.frames(of: .window).isEmpty)
        process.consumed(Int(AgentLink.outputWindow / 4) - 5)
        #expect(try agent.frames(of: .window).map { try AgentCredit.decode($0.payload) } == [AgentLink.outputWindow / 4])
    }

    /// A repeated `started` counts once: no more credit (and, with direct pipes offered, no more
    /// descriptors taken), whatever an agent sends.
    @Test func aRepeatedStartedCountsOnce() async throws {
        let agent = ScriptedAgent()
        let link = AgentLink(kind: "test", io: agent.io(), logger: logger)
        async let started = link.start(argv: ["/bin/cat"], environment: [:], terminal: nil)
        await waitFor { !agent.frames(of: .start).isEmpty }
        let channel = agent.frames(of: .start)[0].channel
        let pipes = AgentDirectPipes(
            stdin: AgentPipeEnd(descriptor: 0, inode: 1), stdout: AgentPipeEnd(descriptor: 1, inode: 2), stderr: AgentPipeEnd(descriptor: 2, inode: 3))
        for pid: UInt32 in [7, 8, 9] {
            link.receive(ByteBuffer(bytes: AgentFrame(.started, channel: channel, payload: AgentProcessStarted(pid: pid, inputWindow: 3, direct: pipes).encoded()).encoded()))
        }
        let process = try await started
        #expect(process.pid == 7)
        // Without the agent's process at hand Berth declines, and answers the one offer only.
        #expect(agent.frames(of: .direct).map(\.payload) == [AgentDirectAnswer.declined.encoded()])
        let writer = Task { try await process.write(ByteBuffer(string: "abcdefgh")) }
        await waitFor { agent.frames(of: .input).count == 1 }
        #expect(agent.frames(of: .input).map(\.payload) == [Array("abc".utf8)])
        process.close()
        _ = try? await writer.value
    }

    /// Stdin is sent only within the agent's credit, split where the credit ends.
    @Test func stdinWaitsForCredit() async throws {
        let agent = ScriptedAgent()
        let link = AgentLink(kind: "test", io: agent.io(), logger: logger)
        async let started = link.start(argv: ["/bin/cat"], environment: [:], terminal: nil)
        await waitFor { !agent.frames(of: .start).isEmpty }
        let channel = agent.frames(of: .start)[0].channel
        link.receive(ByteBuffer(bytes: AgentFrame(.started, channel: channel, payload: AgentProcessStarted(pid: 7, inputWindow: 3).encoded()).encoded()))
        let process = try await started
        let writer = Task { try await process.write(ByteBuffer(string: "abcdefgh")) }
        await waitFor { agent.frames(of: .input).count == 1 }
        #expect(agent.frames(of: .input).map(\.payload) == [Array("abc".utf8)])
        link.receive(ByteBuffer(bytes: AgentFrame(.window, channel: channel, payload: AgentCredit.encoded(10)).encoded()))
        try await writer.value
        #expect(agent.frames(of: .input).map(\.payload) == [Array("abc".utf8), Array("defgh".utf8)])
    }

    /// A link that ends while programs run: every waiter and every program learns it at once.
    @Test func lostLinkEndsEverything() async throws {
        let agent = ScriptedAgent()
        let link = AgentLink(kind: "test", io: agent.io(), logger: logger)
        async let started = link.start(argv: ["/bin/sleep"], environment: [:], terminal: nil)
        await waitFor { !agent.frames(of: .start).isEmpty }
        let channel = agent.frames(of: .start)[0].channel
        link.receive(ByteBuffer(bytes: AgentFrame(.started, channel: channel, payload: AgentProcessStarted(pid: 7, inputWindow: 0).encoded()).encoded()))
        let process = try await started
        let writer = Task { try await process.write(ByteBuffer(string: "blocked")) }
        link.lost("agent killed")
        var last: AgentProcessEvent?
        for await event in process.events { last = event }
        guard case .lost(let reason)? = last else { Issue.record("no lost event"); return }
        #expect(reason == "agent killed")
        await #expect(throws: AgentLinkError.self) { try await writer.value }
        await #expect(throws: AgentLinkError.self) { try await link.writeFile(path: "/x", contents: []) }
        await link.waitClosed()
    }

    @Test func malformedAgentOutputEndsTheLink() async {
        let agent = ScriptedAgent()
        let link = AgentLink(kind: "test", io: agent.io(), logger: logger)
        link.receive(ByteBuffer(bytes: [0, 0, 0, 5, 0xEE, 0, 0, 0, 1]))
        #expect(link.closedReason?.contains("AGENT_PROTOCOL_UNKNOWN_TYPE") == true)
    }
}

@Suite struct LoginAccountTests {
    @Test func loginNamesBecomeAccountNames() {
        for (login, account) in [
            ("alice", "alice"), ("Bob.Smith", "bob.smith"), ("Robot.Ops@Example.com", "robot.ops_example.com"),
            ("1st", "_1st"), ("-rf", "_-rf"), ("zoë", "zo_"), ("", "user"), ("a:b c", "a_b_c"),
            (String(repeating: "x", count: 40), String(repeating: "x", count: 32)),
        ] {
            #expect(LoginUserConfig.accountName(for: login) == account, "\(login)")
            #expect(AgentUser.isAccountName(LoginUserConfig.accountName(for: login)), "\(login)")
        }
    }

    @Test func accountFollowsTheConfiguration() {
        var config = LoginUserConfig()
        #expect(config.account(for: "Alice") == AgentUser(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash"))
        config.gid = 100
        config.homeRoot = "/srv/people/"
        config.sudo = true
        #expect(config.account(for: "alice") == AgentUser(name: "alice", uid: 1000, gid: 100, home: "/srv/people/alice", shell: "/bin/bash", flags: AgentUser.sudo))
        config.mode = .container
        #expect(config.account(for: "alice") == nil)
    }
}
