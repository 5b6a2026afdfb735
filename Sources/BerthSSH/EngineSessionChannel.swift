import BerthCore
import BerthSSHEngine
import BerthSSHWire
import NIOConcurrencyHelpers
import NIOCore

/// The backend's view of one SSH session channel (Core's `SessionChannel`) on an engine channel.
final class EngineSessionChannel: SessionChannel {
    let channelID: UInt64
    let connection: ConnectionMetadata
    let stdin: SessionInput
    let writer: ChannelWriter
    private let state = NIOLockedValueBox(State())

    private struct State {
        var exitReported = false
        var rules = SessionRequestRules()
    }

    init(writer: ChannelWriter, channelID: UInt64, connection: ConnectionMetadata, stdin: SessionInput) {
        self.writer = writer
        self.channelID = channelID
        self.connection = connection
        self.stdin = stdin
    }

    func writeStdout(_ data: ByteBuffer) async throws {
        try await writer.write(data)
    }

    func writeStderr(_ data: ByteBuffer) async throws {
        try await writer.write(data, extendedType: 1)
    }

    var output: SessionOutput? {
        let channel = writer.channel
        return SessionOutput(eventLoop: channel.eventLoop) { data, stream, promise in
            channel.value.write(data, extendedType: stream == .stderr ? 1 : nil, promise: promise)
        }
    }

    private func claimExitReport() -> Bool {
        state.withLockedValue { state in
            defer { state.exitReported = true; state.rules.programFinished() }
            return !state.exitReported
        }
    }

    func sendExitStatus(_ status: UInt32) async {
        guard claimExitReport() else { return }
        var payload = ByteBuffer()
        payload.writeSSHUInt32(status)
        await writer.sendRequest("exit-status", payload)
    }

    func sendExitSignal(name: String, coreDumped: Bool, message: String) async {
        guard claimExitReport() else { return }
        var payload = ByteBuffer()
        payload.writeSSHText(name)
        payload.writeSSHBool(coreDumped)
        payload.writeSSHText(message)
        payload.writeSSHText("en-US")
        await writer.sendRequest("exit-signal", payload)
    }

    func closeWrite() async {
        await writer.sendEOF()
    }

    func close() async {
        await writer.close()
    }

    func checkRequest(_ kind: SessionRequestRules.Kind) -> String? {
        state.withLockedValue { $0.rules.check(kind) }
    }

    func markProgramStarted() {
        state.withLockedValue { $0.rules.programStarted() }
    }
}

/// Core's `ForwardChannel` on an engine channel (`direct-tcpip` or `forwarded-tcpip`).
final class EngineForwardChannel: ForwardChannel {
    let channelID: UInt64
    let input: SessionInput
    private let writer: ChannelWriter
    private let closed: EventLoopFuture<Void>

    init(writer: ChannelWriter, channelID: UInt64, input: SessionInput, closed: EventLoopFuture<Void>) {
        self.writer = writer
        self.channelID = channelID
        self.input = input
        self.closed = closed
    }

    func write(_ data: ByteBuffer) async throws {
        try await writer.write(data)
    }

    func closeWrite() async {
        await writer.sendEOF()
    }

    func close() async {
        await writer.close()
    }

    func waitClosed() async {
        _ = try? await closed.get()
    }
}
