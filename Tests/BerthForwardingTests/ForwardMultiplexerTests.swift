import BerthCore
import BerthForwardProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import Testing
@testable import BerthForwarding

/// The agent's side, scripted: answers NEW_CONNECTION with SUCCESS and, in the same read,
/// the connection's first DATA, as a real forward-server does when the target talks first.
private final class ScriptedAgent: ForwardTransport {
    let output: AsyncStream<ByteBuffer>
    private let continuation: AsyncStream<ByteBuffer>.Continuation
    private let greeting: [UInt8]

    init(greeting: [UInt8]) {
        (output, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        self.greeting = greeting
    }

    func send(_ bytes: [UInt8]) async throws {
        var reader = ForwardPacketReader()
        for packet in try reader.feed(bytes) {
            switch packet.type {
            case .setup:
                continuation.yield(ByteBuffer(bytes: ForwardPacket(.success).encoded()))
            case .newConnection:
                let id = packet.connectionID
                continuation.yield(
                    ByteBuffer(
                        bytes: ForwardPacket(.success, connectionID: id).encoded()
                            + ForwardPacket(.data, connectionID: id, payload: greeting).encoded()
                            + ForwardPacket(.closeConnection, connectionID: id).encoded()))
            default:
                break
            }
        }
    }

    func close() async { continuation.finish() }
}

/// A client channel that records what reaches it.
private final class RecordingChannel: ForwardChannel {
    let channelID: UInt64 = 1
    let input = SessionInput { nil }
    private let received = NIOLockedValueBox<[UInt8]>([])
    private let eof = NIOLockedValueBox(false)

    var bytes: [UInt8] { received.withLockedValue { $0 } }
    var sawEOF: Bool { eof.withLockedValue { $0 } }

    func write(_ data: ByteBuffer) async throws { received.withLockedValue { $0 += Array(data.readableBytesView) } }
    func closeWrite() async { eof.withLockedValue { $0 = true } }
    private let closed = AsyncStream.makeStream(of: Void.self)

    func close() async { closed.continuation.finish() }
    func waitClosed() async { for await _ in closed.stream {} }
}

/// The agent's side, recording every packet Berth sends; accepts setup and dials.
private final class RecordingAgent: ForwardTransport {
    let output: AsyncStream<ByteBuffer>
    private let continuation: AsyncStream<ByteBuffer>.Continuation
    let packets = NIOLockedValueBox<[ForwardPacket]>([])

    init() { (output, continuation) = AsyncStream.makeStream(of: ByteBuffer.self) }

    func send(_ bytes: [UInt8]) async throws {
        var reader = ForwardPacketReader()
        for packet in try reader.feed(bytes) {
            packets.withLockedValue { $0.append(packet) }
            if packet.type == .setup || packet.type == .newConnection {
                continuation.yield(ByteBuffer(bytes: ForwardPacket(.success, connectionID: packet.connectionID).encoded()))
            }
        }
    }

    func close() async { continuation.finish() }
}

/// A client that sent its data, EOF and CLOSE at once: the input still holds the data while
/// the channel already counts as closed.
private final class ClosingClientChannel: ForwardChannel {
    let channelID: UInt64 = 2
    let input: SessionInput

    init(chunks: [[UInt8]]) {
        let queue = NIOLockedValueBox(chunks)
        input = SessionInput {
            queue.withLockedValue { $0.isEmpty ? nil : ByteBuffer(bytes: $0.removeFirst()) }
        }
    }

    func write(_ data: ByteBuffer) async throws {}
    func closeWrite() async {}
    func close() async {}
    func waitClosed() async {}
}

@Suite struct ForwardMultiplexerTests {
    @Test func dataQueuedBeforeTheClientsCloseStillReachesTheAgent() async throws {
        let chunks = (0..<64).map { index in [UInt8](repeating: UInt8(index), count: 4096) }
        let agent = RecordingAgent()
        let multiplexer = ForwardMultiplexer(transport: agent, logger: Logger(label: "test"))
        let reader = Task { await multiplexer.run(agent.output) }
        _ = try await multiplexer.setup(ForwardSetup(.portDial))
        try await multiplexer.dial(ForwardNewConnection(protocolName: "unix", connectedAddress: "/tmp/s.sock", connectedPort: 0), channel: ClosingClientChannel(chunks: chunks))
        // The connection is dropped (ERROR) once the client's bytes and its CLOSE are out.
        for _ in 0..<500 where !agent.packets.withLockedValue({ $0.contains { $0.type == .error } }) {
            try await Task.sleep(for: .milliseconds(10))
        }
        let sent = agent.packets.withLockedValue { $0 }.filter { $0.connectionID == 1 }
        #expect(sent.map(\.type).last == .error)
        let delivered = sent.filter { $0.type == .data }.flatMap { $0.payload ?? [] }
        let whole = delivered == chunks.flatMap { $0 }
        #expect(delivered.count == chunks.count * 4096)
        #expect(whole, "the client's bytes, in order")
        #expect(sent.firstIndex { $0.type == .closeConnection }! > sent.lastIndex { $0.type == .data }!)
        await multiplexer.shutdown()
        await reader.value
    }

    @Test func dataRightAfterTheDialAnswerIsNotLost() async throws {
        let greeting = Array("the target spoke first".utf8)
        for _ in 0..<20 {
            let agent = ScriptedAgent(greeting: greeting)
            let multiplexer = ForwardMultiplexer(transport: agent, logger: Logger(label: "test"))
            let reader = Task { await multiplexer.run(agent.output) }
            _ = try await multiplexer.setup(ForwardSetup(.portDial))
            let channel = RecordingChannel()
            try await multiplexer.dial(
                ForwardNewConnection(
                    protocolName: "tcp", connectedAddress: "127.0.0.1", connectedPort: 80,
                    originatorAddress: "127.0.0.1", originatorPort: 1), channel: channel)
            for _ in 0..<100 where !channel.sawEOF { try await Task.sleep(for: .milliseconds(10)) }
            #expect(channel.bytes == greeting)
            #expect(channel.sawEOF)
            await multiplexer.shutdown()
            await reader.value
        }
    }
}
