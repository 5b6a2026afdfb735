import Testing
@testable import BerthAgentProtocol
import BerthTestSupport

@Suite struct AgentProtocolTests {
    /// The layout of docs/agent-protocol.md, byte for byte: length 5 + 3, type, channel, payload.
    @Test func frameLayoutMatchesTheSpec() {
        let frame = AgentFrame(.input, channel: 0x0102_0304, payload: [0xAA, 0xBB, 0xCC])
        #expect(frame.encoded() == [0, 0, 0, 8, 0x12, 1, 2, 3, 4, 0xAA, 0xBB, 0xCC])
        #expect(AgentFrame(.eof, channel: 7).encoded() == [0, 0, 0, 5, 0x16, 0, 0, 0, 7])
    }

    @Test func messagesRoundTrip() throws {
        let start = AgentProcessStart(
            argv: ["/bin/sh", "-c", "echo ü"], environment: ["TERM=xterm", "EMPTY="],
            terminal: AgentWindowSize(columns: 97, rows: 31, widthPixels: 1, heightPixels: 2), outputWindow: 1 << 20)
        #expect(try AgentProcessStart(decoding: start.encoded()) == start)
        let pipes = AgentProcessStart(argv: ["/bin/true"], outputWindow: 5)
        #expect(try AgentProcessStart(decoding: pipes.encoded()) == pipes)
        #expect(try AgentProcessStarted(decoding: AgentProcessStarted(pid: 42, inputWindow: 9).encoded()) == AgentProcessStarted(pid: 42, inputWindow: 9))
        for exit in [AgentExit.status(0), .status(255), .signal(name: "USR1", coreDumped: false), .signal(name: "SEGV", coreDumped: true)] {
            #expect(try AgentExit(decoding: exit.encoded()) == exit)
        }
        let file = AgentWriteFile(path: "/tmp/x", mode: 0o600, contents: [1, 2, 3])
        #expect(try AgentWriteFile(decoding: file.encoded()) == file)
        let user = AgentUser(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash", flags: AgentUser.sudo)
        #expect(try AgentUser(decoding: user.encoded()) == user)
        let reply = AgentUserReply(uid: 1001, gid: 50, home: "/home/alice")
        #expect(try AgentUserReply(decoding: reply.encoded()) == reply)
        let hello = AgentHello(secret: Array("s3cret".utf8))
        #expect(try AgentHello(decoding: hello.encoded()) == hello)
        #expect(try AgentHelloReply(decoding: AgentHelloReply(pid: 1).encoded()) == AgentHelloReply(pid: 1))
        #expect(try AgentCredit.decode(AgentCredit.encoded(65536)) == 65536)
        #expect(try AgentWindowSize(decoding: AgentWindowSize(columns: 120, rows: 40).encoded()) == AgentWindowSize(columns: 120, rows: 40))
    }

    /// The resume frames' layout (docs/agent-protocol.md, "Resumable sessions"), byte for byte,
    /// and that the frames from before are unchanged by their addition.
    @Test func resumeFramesMatchTheSpec() throws {
        #expect(AgentFrameType.resumable.rawValue == 0x40 && AgentFrameType.detach.rawValue == 0x41)
        #expect(AgentFrameType.sessions.rawValue == 0x42 && AgentFrameType.attach.rawValue == 0x43)
        let resumable = AgentResumable(owner: "al", windowSeconds: 300, bufferBytes: 65536)
        #expect(resumable.encoded() == [0, 0, 0, 2, 0x61, 0x6C, 0, 0, 0x01, 0x2C, 0, 1, 0, 0])
        #expect(try AgentResumable(decoding: resumable.encoded()) == resumable)
        let attach = AgentAttach(pid: 0x0102, terminal: AgentWindowSize(columns: 91, rows: 37), outputWindow: 1 << 20)
        #expect(attach.encoded() == [0, 0, 1, 2, 0, 0, 0, 91, 0, 0, 0, 37, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0])
        #expect(try AgentAttach(decoding: attach.encoded()) == attach)
        let list = AgentSessionList([
            AgentDetachedSession(pid: 7, detachedSeconds: 1, remainingSeconds: 2, command: "sh"),
            AgentDetachedSession(pid: 9, detachedSeconds: 0, remainingSeconds: 300, command: "/bin/bash -l"),
        ])
        #expect(Array(list.encoded().prefix(22)) == [0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 2, 0x73, 0x68])
        #expect(try AgentSessionList(decoding: list.encoded()) == list)
        #expect(try AgentSessionList(decoding: AgentSessionList([]).encoded()).sessions.isEmpty)
        // The frames from before keep their bytes.
        #expect(AgentFrame(.close, channel: 1).encoded() == [0, 0, 0, 5, 0x1A, 0, 0, 0, 1])
        #expect(AgentFrame(.detach, channel: 1).encoded() == [0, 0, 0, 5, 0x41, 0, 0, 0, 1])
    }

    @Test func badResumePayloadsHaveStableCodes() {
        func code(_ body: () throws -> Void) -> String? {
            do { try body() } catch let error as AgentProtocolError { return error.code } catch { return "other" }
            return nil
        }
        #expect(code { _ = try AgentResumable(decoding: AgentResumable(owner: "", windowSeconds: 1, bufferBytes: 1).encoded()) } == "AGENT_PROTOCOL_BAD_OWNER")
        #expect(
            code { _ = try AgentResumable(decoding: AgentResumable(owner: String(repeating: "a", count: 257), windowSeconds: 1, bufferBytes: 1).encoded()) }
                == "AGENT_PROTOCOL_BAD_OWNER")
        #expect(code { _ = try AgentResumable(decoding: AgentResumable(owner: "a\u{0}b", windowSeconds: 1, bufferBytes: 1).encoded()) } == "AGENT_PROTOCOL_BAD_OWNER")
        #expect(code { _ = try AgentResumable(decoding: AgentResumable(owner: "a", windowSeconds: 1, bufferBytes: (1 << 20) + 1).encoded()) } == "AGENT_PROTOCOL_BAD_BUFFER")
        #expect(code { _ = try AgentAttach(decoding: AgentAttach(pid: 0, terminal: AgentWindowSize(columns: 1, rows: 1), outputWindow: 1).encoded()) } == "AGENT_PROTOCOL_BAD_PID")
        #expect(
            code { _ = try AgentAttach(decoding: Array(AgentAttach(pid: 1, terminal: AgentWindowSize(columns: 1, rows: 1), outputWindow: 1).encoded().dropLast())) }
                == "AGENT_PROTOCOL_TRUNCATED")
        // A count that the payload cannot hold is refused before anything is allocated.
        #expect(code { _ = try AgentSessionList(decoding: [0xFF, 0xFF, 0xFF, 0xFF]) } == "AGENT_PROTOCOL_TRUNCATED")
        #expect(code { _ = try AgentSessionList(decoding: AgentSessionList([]).encoded() + [0]) } == "AGENT_PROTOCOL_TRAILING_BYTES")
    }

    @Test func framesSurviveAnyChunking() throws {
        let frames = [
            AgentFrame(.hello, channel: 0, payload: AgentHello(secret: [1, 2]).encoded()),
            AgentFrame(.start, channel: 1, payload: AgentProcessStart(argv: ["/bin/cat"], outputWindow: 100).encoded()),
            AgentFrame(.input, channel: 1, payload: Array(repeating: 9, count: 70_000)),
            AgentFrame(.eof, channel: 1),
        ]
        let stream = frames.flatMap { $0.encoded() }
        for size in [1, 2, 9, 10, 4096, stream.count] {
            var reader = AgentFrameReader()
            var decoded: [AgentFrame] = []
            var offset = 0
            while offset < stream.count {
                let end = min(offset + size, stream.count)
                decoded += try reader.feed(Array(stream[offset..<end]))
                offset = end
            }
            #expect(decoded == frames)
            #expect(!reader.isMidFrame)
        }
    }

    @Test(
        arguments: [
            ([0, 0, 0, 4, 0x12, 0, 0, 0], "AGENT_PROTOCOL_SHORT_FRAME"),
            ([0, 0x10, 0, 6, 0x12, 0, 0, 0, 1], "AGENT_PROTOCOL_FRAME_TOO_LARGE"),
            ([0, 0, 0, 5, 0x7F, 0, 0, 0, 1], "AGENT_PROTOCOL_UNKNOWN_TYPE"),
        ] as [([UInt8], String)])
    func badHeadersHaveStableCodes(bytes: [UInt8], code: String) {
        var reader = AgentFrameReader()
        do {
            _ = try reader.feed(bytes + [0])
            Issue.record("accepted \(bytes)")
        } catch {
            #expect(error.code == code)
        }
    }

    @Test func badPayloadsHaveStableCodes() {
        func code(_ body: () throws -> Void) -> String? {
            do { try body() } catch { return (error as? AgentProtocolError)?.code ?? "not an AgentProtocolError: \(error)" }
            return nil
        }
        var emptyArgv = AgentPayloadWriter()
        emptyArgv.u8(0); for _ in 0..<5 { emptyArgv.u32(0) }; emptyArgv.strings([]); emptyArgv.strings([])
        #expect(code { _ = try AgentProcessStart(decoding: emptyArgv.bytes) } == "AGENT_PROTOCOL_NO_PROGRAM")
        #expect(
            code { _ = try AgentProcessStart(decoding: AgentProcessStart(argv: ["/x"], environment: ["NOEQUALS"], outputWindow: 1).encoded()) } == "AGENT_PROTOCOL_BAD_ENVIRONMENT")
        #expect(code { _ = try AgentProcessStart(decoding: AgentProcessStart(argv: ["/x\u{0}y"], outputWindow: 1).encoded()) } == "AGENT_PROTOCOL_NUL_BYTE")
        #expect(code { _ = try AgentExit(decoding: [2]) } == "AGENT_PROTOCOL_BAD_EXIT")
        #expect(code { _ = try AgentCredit.decode([0, 0, 0, 1, 0]) } == "AGENT_PROTOCOL_TRAILING_BYTES")
        #expect(code { _ = try AgentHello(decoding: [1, 0, 0, 0, 9, 1]) } == "AGENT_PROTOCOL_TRUNCATED")
        #expect(code { _ = try AgentWriteFile(decoding: AgentWriteFile(path: "", contents: []).encoded()) } == "AGENT_PROTOCOL_BAD_PATH")
        #expect(code { _ = try AgentWriteFile(decoding: AgentWriteFile(path: "/a", mode: 0o10000, contents: []).encoded()) } == "AGENT_PROTOCOL_BAD_MODE")
        // Account names that would corrupt /etc/passwd or confuse tools are refused.
        for name in ["", "Alice", "1abc", "a:b", "a\nb", "-rf", "root\u{0}", String(repeating: "a", count: 33), "bob smith"] {
            #expect(
                code { _ = try AgentUser(decoding: AgentUser(name: name, uid: 1, gid: 1, home: "/h", shell: "/bin/sh").encoded()) } == "AGENT_PROTOCOL_BAD_USER",
                "\(name.debugDescription)")
        }
        for name in ["alice", "_svc", "bob.smith", "a-b_c.d", String(repeating: "a", count: 32)] {
            #expect(AgentUser.isAccountName(name), "\(name)")
        }
        #expect(code { _ = try AgentUser(decoding: AgentUser(name: "a", uid: 1, gid: 1, home: "home", shell: "/bin/sh").encoded()) } == "AGENT_PROTOCOL_BAD_USER")
        #expect(code { _ = try AgentUser(decoding: AgentUser(name: "a", uid: 1, gid: 1, home: "/h:0:0", shell: "/bin/sh").encoded()) } == "AGENT_PROTOCOL_BAD_USER")
        #expect(code { _ = try AgentUser(decoding: AgentUser(name: "a", uid: 1, gid: 1, home: "/h", shell: "/bin/sh", flags: 2).encoded()) } == "AGENT_PROTOCOL_BAD_FLAGS")
        var badUTF8 = AgentPayloadWriter()
        badUTF8.data([0xFF, 0xFE]); badUTF8.u32(0o600); badUTF8.data([])
        #expect(code { _ = try AgentWriteFile(decoding: badUTF8.bytes) } == "AGENT_PROTOCOL_BAD_UTF8")
        // A list count far beyond what the payload can hold is refused before allocating.
        var hugeCount = AgentPayloadWriter()
        hugeCount.u8(0); for _ in 0..<5 { hugeCount.u32(0) }; hugeCount.u32(0xFFFF_FFFF)
        #expect(code { _ = try AgentProcessStart(decoding: hugeCount.bytes) } == "AGENT_PROTOCOL_TRUNCATED")
    }

    /// Random and mutated input (fixed seed, bounded count): the reader and every payload decoder
    /// return values or throw AgentProtocolError; nothing crashes or hangs.
    @Test func fuzzReaderAndDecoders() {
        var random = SeededGenerator(state: 0xB347)
        let seeds: [[UInt8]] = [
            AgentProcessStart(argv: ["/bin/sh", "-c", "x"], environment: ["A=b"], terminal: AgentWindowSize(columns: 80, rows: 24), outputWindow: 9).encoded(),
            AgentWriteFile(path: "/tmp/f", contents: [1, 2, 3]).encoded(),
            AgentExit.signal(name: "TERM", coreDumped: true).encoded(),
            AgentHello(secret: [7, 7]).encoded(),
            AgentWindowSize(columns: 1, rows: 2).encoded(),
            AgentUser(name: "alice", uid: 1000, gid: 1000, home: "/home/alice", shell: "/bin/bash").encoded(),
            AgentResumable(owner: "alice", windowSeconds: 300, bufferBytes: 65536).encoded(),
            AgentAttach(pid: 42, terminal: AgentWindowSize(columns: 80, rows: 24), outputWindow: 1 << 20).encoded(),
            AgentSessionList([AgentDetachedSession(pid: 42, detachedSeconds: 3, remainingSeconds: 297, command: "/bin/sh")]).encoded(),
        ]
        let decoders: [([UInt8]) throws -> Void] = [
            { _ = try AgentProcessStart(decoding: $0) }, { _ = try AgentWriteFile(decoding: $0) }, { _ = try AgentExit(decoding: $0) },
            { _ = try AgentHello(decoding: $0) }, { _ = try AgentHelloReply(decoding: $0) }, { _ = try AgentWindowSize(decoding: $0) },
            { _ = try AgentProcessStarted(decoding: $0) }, { _ = try AgentCredit.decode($0) },
            { _ = try AgentUser(decoding: $0) }, { _ = try AgentUserReply(decoding: $0) },
            { _ = try AgentResumable(decoding: $0) }, { _ = try AgentAttach(decoding: $0) }, { _ = try AgentSessionList(decoding: $0) },
        ]
        var decodedSomething = 0
        for round in 0..<3000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            } else {
                bytes = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...4, using: &random) where !bytes.isEmpty {
                    switch Int.random(in: 0..<3, using: &random) {
                    case 0: bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    case 1: bytes.removeLast(Int.random(in: 0...min(4, bytes.count), using: &random))
                    default: bytes.insert(UInt8.random(in: 0...255, using: &random), at: Int.random(in: 0...bytes.count, using: &random))
                    }
                }
            }
            for decode in decoders {
                do {
                    try decode(bytes)
                    decodedSomething += 1
                } catch {
                    #expect((error as? AgentProtocolError)?.code.hasPrefix("AGENT_PROTOCOL_") == true)
                }
            }
            var reader = AgentFrameReader()
            let framed = AgentFrame(.start, channel: 1, payload: bytes).encoded()
            var mutated = framed
            mutated[Int.random(in: 0..<mutated.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            do {
                _ = try reader.feed(mutated)
                _ = try reader.feed(bytes)
            } catch {
                #expect(error.code.hasPrefix("AGENT_PROTOCOL_"))
            }
        }
        // The mutations keep some inputs valid, so the decoders' success paths ran too.
        #expect(decodedSomething > 0)
    }
}
