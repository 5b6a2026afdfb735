import BerthCore
import NIOCore
import NIOSSH

/// Core's `ForwardChannel` on a swift-nio-ssh child channel (`direct-tcpip` or `forwarded-tcpip`).
final class NIOForwardChannel: ForwardChannel {
    let channelID: UInt64
    let input: SessionInput
    private let channel: Channel
    private let active: EventLoopFuture<Void>

    private init(channel: Channel, channelID: UInt64, input: SessionInput, active: EventLoopFuture<Void>) {
        self.channel = channel
        self.channelID = channelID
        self.input = input
        self.active = active
    }

    /// Installs the input bridge on `child`; call from its initializer, on its event loop.
    static func attach(to child: Channel, channelID: UInt64) throws -> NIOForwardChannel {
        let bridgeBox = NIOLoopBoundBox<SessionChannelBridge?>(nil, eventLoop: child.eventLoop)
        let source = SessionInputSource(eventLoop: child.eventLoop) { bridgeBox.value?.resumeReading() }
        let active = child.eventLoop.makePromise(of: Void.self)
        let bridge = SessionChannelBridge(events: nil, input: source, active: active)
        bridgeBox.value = bridge
        try child.pipeline.syncOperations.addHandler(bridge)
        return NIOForwardChannel(channel: child, channelID: channelID, input: source.makeInput(), active: active.futureResult)
    }

    func write(_ data: ByteBuffer) async throws {
        try await active.get()
        try await channel.writeAndFlush(SSHChannelData(type: .channel, data: .byteBuffer(data))).get()
    }

    func closeWrite() async {
        _ = try? await active.get()
        try? await channel.close(mode: .output).get()
    }

    func close() async {
        try? await channel.close().get()
    }

    func waitClosed() async {
        _ = try? await channel.closeFuture.get()
    }
}
