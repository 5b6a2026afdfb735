import NIOCore
import NIOEmbedded
import Testing
@testable import BerthDocker
import BerthCore

@Suite struct DockerStreamDemultiplexerTests {
    private func frame(_ stream: UInt8, _ payload: String) -> [UInt8] {
        let bytes = Array(payload.utf8)
        let length = UInt32(bytes.count)
        return [stream, 0, 0, 0, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)] + bytes
    }

    private func collect(_ chunks: [[UInt8]]) throws -> (stdout: String, stderr: String) {
        var demux = DockerStreamDemultiplexer()
        var out = "", err = ""
        for chunk in chunks {
            for (stream, payload) in try demux.feed(ByteBuffer(bytes: chunk)) {
                let text = String(decoding: payload.readableBytesView, as: UTF8.self)
                if stream == .stdout { out += text } else { err += text }
            }
        }
        #expect(!demux.isMidFrame)
        return (out, err)
    }

    @Test func framesInOneReadAndSplitByteByByte() throws {
        let bytes = frame(1, "hello ") + frame(2, "oops") + frame(1, "") + frame(1, "world")
        let whole = try collect([bytes])
        #expect(whole.stdout == "hello world" && whole.stderr == "oops")
        let trickled = try collect(bytes.map { [$0] })
        #expect(trickled.stdout == "hello world" && trickled.stderr == "oops")
    }

    @Test func largeFramesStreamAsTheyArrive() throws {
        let payload = String(repeating: "x", count: 100_000)
        let bytes = frame(1, payload)
        var demux = DockerStreamDemultiplexer()
        let first = try demux.feed(ByteBuffer(bytes: bytes[0..<50_008]))
        #expect(first.reduce(0) { $0 + $1.1.readableBytes } == 50_000)
        #expect(demux.isMidFrame)
        _ = try demux.feed(ByteBuffer(bytes: bytes[50_008...]))
        #expect(!demux.isMidFrame)
    }

    @Test func malformedHeadersAreErrors() {
        var demux = DockerStreamDemultiplexer()
        #expect(throws: DockerStreamDemultiplexer.MalformedFrame.self) { try demux.feed(ByteBuffer(bytes: [7, 0, 0, 0, 0, 0, 0, 1, 65])) }
        var padded = DockerStreamDemultiplexer()
        #expect(throws: DockerStreamDemultiplexer.MalformedFrame.self) { try padded.feed(ByteBuffer(bytes: [1, 1, 0, 0, 0, 0, 0, 1, 65])) }
    }

    @Test func randomInputNeverCrashes() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var demux = DockerStreamDemultiplexer()
            let length = Int.random(in: 0...64, using: &generator)
            let bytes = (0..<length).map { _ in UInt8.random(in: 0...3, using: &generator) }
            _ = try? demux.feed(ByteBuffer(bytes: bytes))
        }
    }
}

@Suite struct PIDPrefixDecoderTests {
    private func decode(_ chunks: [[UInt8]], tty: Bool) -> (UInt32?, [UInt8]) {
        var decoder = PIDPrefixDecoder(tty: tty)
        var output: [UInt8] = []
        for chunk in chunks {
            if let rest = decoder.feed(ByteBuffer(bytes: chunk)) { output += rest.readableBytesView }
        }
        decoder.finish()
        return (decoder.pid, output)
    }

    @Test func pidSplitAcrossReads() {
        let (pid, output) = decode([[0x39], [0x30, 0x00], [0x00, 0x68, 0x69]], tty: false)
        #expect(pid == 0x3039)
        #expect(output == Array("hi".utf8))
    }

    @Test func ttyTurnsNewlineBytesIntoCarriageReturnNewline() {
        // PID 0x0A0A = 2570 comes through a TTY as 0D 0A 0D 0A 00 00.
        let (pid, output) = decode([[0x0D, 0x0A, 0x0D], [0x0A, 0x00, 0x00, 0x6F, 0x6B]], tty: true)
        #expect(pid == 0x0A0A)
        #expect(output == Array("ok".utf8))
    }

    @Test func ttyCarriageReturnPIDByteFollowedByOutput() {
        // Last PID byte 0x0D, then the program prints "\n" (0D 0A through the TTY).
        let (pid, output) = decode([[0x01, 0x02, 0x03, 0x0D, 0x0D, 0x0A]], tty: true)
        #expect(pid == 0x0D03_0201)
        #expect(output == [0x0D, 0x0A])
        let (endPID, rest) = decode([[0x01, 0x02, 0x03, 0x0D]], tty: true)
        #expect(endPID == 0x0D03_0201 && rest.isEmpty)
    }

    @Test func withoutTTYBytesAreTakenAsTheyAre() {
        let (pid, output) = decode([[0x0D, 0x0A, 0x00, 0x00, 0x0D, 0x0A]], tty: false)
        #expect(pid == 0x0A0D)
        #expect(output == [0x0D, 0x0A])
    }
}

@Suite struct ShellWordsTests {
    @Test func pathsAreSplitOthersGoThroughTheShell() {
        #expect(ShellWords.argv(for: "/bin/echo 'a b' \"c\\\"d\" e\\ f") == ["/bin/echo", "a b", "c\"d", "e f"])
        #expect(ShellWords.argv(for: "./run.sh --x") == ["./run.sh", "--x"])
        #expect(ShellWords.argv(for: "echo $HOME | wc") == ["/bin/sh", "-c", "echo $HOME | wc"])
        #expect(ShellWords.argv(for: "/bin/echo 'open") == ["/bin/sh", "-c", "/bin/echo 'open"])
    }
}

/// The raw-stream handler on NIO's async test channel: what one read burst brings is handed on
/// joined per stream run at read-complete, and what was read before the engine closed the stream
/// goes out before the end.
@Suite struct DockerRawStreamHandlerTests {
    private func frame(_ stream: UInt8, _ payload: String) -> ByteBuffer {
        let bytes = Array(payload.utf8)
        let length = UInt32(bytes.count)
        return ByteBuffer(bytes: [stream, 0, 0, 0, UInt8(length >> 24), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)] + bytes)
    }

    private func start(_ channel: NIOAsyncTestingChannel) async throws -> DockerOutputSequence {
        let output = try await channel.testingEventLoop.executeInContext {
            let (feed, output) = EngineOutputFeed<DockerOutput>.make(eventLoop: channel.eventLoop)
            try channel.pipeline.syncOperations.addHandler(DockerRawStreamHandler(feed: feed, tty: false))
            return output
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2375))
        return output
    }

    private func pieces(_ output: DockerOutputSequence) async throws -> [String] {
        var got: [String] = []
        for try await piece in output { got.append((piece.isStdout ? "out:" : "err:") + String(buffer: piece.bytes)) }
        return got
    }

    @Test func aBurstIsJoinedPerStreamAndFlushedBeforeTheEnd() async throws {
        let channel = NIOAsyncTestingChannel()
        let output = try await start(channel)
        let frames = [frame(1, "ab"), frame(1, "cd"), frame(2, "e"), frame(1, "f")]
        try await channel.testingEventLoop.executeInContext {
            for bytes in frames { channel.pipeline.fireChannelRead(NIOAny(bytes)) }
        }
        try await channel.close()
        #expect(try await pieces(output) == ["out:abcd", "err:e", "out:f"])
    }

    @Test func aBrokenFrameEndsTheOutputWithAProtocolErrorAfterWhatCameBefore() async throws {
        let channel = NIOAsyncTestingChannel()
        let output = try await start(channel)
        let broken = ByteBuffer(bytes: [7, 0, 0, 0, 0, 0, 0, 1, 0x41])
        let good = frame(1, "ok")
        try await channel.testingEventLoop.executeInContext {
            channel.pipeline.fireChannelRead(NIOAny(good))
            channel.pipeline.fireChannelRead(NIOAny(broken))
        }
        var iterator = output.makeAsyncIterator()
        let first = try await iterator.next()
        #expect(first.map { String(buffer: $0.bytes) } == "ok")
        await #expect { _ = try await iterator.next() } throws: { ($0 as? DockerError)?.code == "DOCKER_PROTOCOL_ERROR" }
    }
}
