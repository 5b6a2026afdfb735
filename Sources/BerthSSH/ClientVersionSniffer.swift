import NIOCore

/// Records the client's identification line (`SSH-2.0-OpenSSH_9.6`), which the SSH library does
/// not expose but webhooks must receive. Passes every byte through unchanged and removes itself
/// once the line is seen.
final class ClientVersionSniffer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private static let maximumLineLength = 255
    private var collected: [UInt8] = []
    private let onVersion: (String) -> Void

    init(onVersion: @escaping (String) -> Void) {
        self.onVersion = onVersion
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if let version = scan(buffer.readableBytesView) {
            onVersion(version)
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

    /// Lines before the `SSH-` line are allowed by RFC 4253 §4.2 only from servers, but skipping
    /// them costs nothing.
    private func scan(_ bytes: ByteBufferView) -> String? {
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                var line = collected
                collected.removeAll()
                if line.last == UInt8(ascii: "\r") { line.removeLast() }
                let text = String(decoding: line, as: UTF8.self)
                if text.hasPrefix("SSH-") { return text }
            } else if collected.count < Self.maximumLineLength {
                collected.append(byte)
            }
        }
        return nil
    }
}
