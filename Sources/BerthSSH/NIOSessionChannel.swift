import BerthCore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSH

/// The backend's view of one SSH session channel (Core's `SessionChannel`), implemented on a
/// swift-nio-ssh child channel.
final class NIOSessionChannel: SessionChannel {
    let channelID: UInt64
    let connection: ConnectionMetadata
    let stdin: SessionInput
    private let channel: Channel
    private let state = NIOLockedValueBox(State())

    private struct State {
        var exitReported = false
        var lastWrite: EventLoopFuture<Void>?
        /// Writes handed to the channel and maybe not yet on the wire, oldest first.
        var inFlight: [EventLoopFuture<Void>] = []
        var rules = SessionRequestRules()
    }

    /// How many writes may be outstanding before a writer waits for the oldest. Waiting for every
    /// write before the next one made streaming a ping-pong between the writer's thread and the
    /// event loop; a short pipeline keeps the loop busy while memory stays bounded (the SSH
    /// library holds writes that exceed the client's window, so a full window still suspends).
    private static let maxWritesInFlight = 16

    init(channel: Channel, channelID: UInt64, connection: ConnectionMetadata, stdin: SessionInput) {
        self.channel = channel
        self.channelID = channelID
        self.connection = connection
        self.stdin = stdin
    }

    func writeStdout(_ data: ByteBuffer) async throws {
        try await write(SSHChannelData(type: .channel, data: .byteBuffer(data)))
    }

    func writeStderr(_ data: ByteBuffer) async throws {
        try await write(SSHChannelData(type: .stdErr, data: .byteBuffer(data)))
    }

    private func write(_ data: SSHChannelData) async throws {
        let future = channel.eventLoop.flatSubmit { [channel] in channel.writeAndFlush(data) }
        let oldest: EventLoopFuture<Void>? = state.withLockedValue { state in
            state.lastWrite = future
            state.inFlight.append(future)
            return state.inFlight.count > Self.maxWritesInFlight ? state.inFlight.removeFirst() : nil
        }
        try await oldest?.get()
    }

    /// Channel requests overtake queued data in the SSH library, so exit reports wait until every
    /// byte written before them has been handed to the connection.
    private func afterPendingWrites() async {
        let pending = state.withLockedValue { $0.lastWrite }
        _ = try? await pending?.get()
    }

    private func claimExitReport() -> Bool {
        state.withLockedValue { state in
            defer { state.exitReported = true; state.rules.programFinished() }
            return !state.exitReported
        }
    }

    func sendExitStatus(_ status: UInt32) async {
        guard claimExitReport() else { return }
        await afterPendingWrites()
        try? await channel.triggerUserOutboundEvent(SSHChannelRequestEvent.ExitStatus(exitStatus: Int(status))).get()
    }

    func sendExitSignal(name: String, coreDumped: Bool, message: String) async {
        guard claimExitReport() else { return }
        await afterPendingWrites()
        let event = SSHChannelRequestEvent.ExitSignal(signalName: name, errorMessage: message, language: "en-US", dumpedCore: coreDumped)
        try? await channel.triggerUserOutboundEvent(event).get()
    }

    func closeWrite() async {
        await afterPendingWrites()
        try? await channel.close(mode: .output).get()
    }

    func close() async {
        await afterPendingWrites()
        try? await channel.close().get()
    }

    func checkRequest(_ kind: SessionRequestRules.Kind) -> String? {
        state.withLockedValue { $0.rules.check(kind) }
    }

    func markProgramStarted() {
        state.withLockedValue { $0.rules.programStarted() }
    }
}
