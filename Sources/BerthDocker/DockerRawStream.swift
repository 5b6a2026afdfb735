import BerthCore
import NIOConcurrencyHelpers
import NIOCore

/// Output of an exec or attach stream.
public enum DockerOutput: Sendable {
    case stdout(ByteBuffer)
    case stderr(ByteBuffer)
}

extension DockerOutput {
    var bytes: ByteBuffer {
        switch self {
        case .stdout(let bytes), .stderr(let bytes): return bytes
        }
    }

    var isStdout: Bool {
        if case .stdout = self { return true }
        return false
    }
}

extension DockerOutput: ProgramStreamOutput {
    public var pumpPiece: ProgramStreamPump.Piece { isStdout ? .stdout(bytes) : .stderr(bytes) }
}

/// A hijacked exec/attach connection: the program's output as an async sequence (demultiplexed
/// without a TTY), and its stdin as writes with half-close for EOF.
public final class DockerRawStream: EngineProgramStream {
    public let output: DockerOutputSequence
    private let channel: Channel

    init(channel: Channel, output: DockerOutputSequence) {
        self.channel = channel
        self.output = output
    }

    /// Writes handed to the engine connection and maybe not yet taken, oldest first.
    private let inFlight = NIOLockedValueBox<[EventLoopFuture<Void>]>([])
    /// Waiting for each write before the next made input a ping-pong between threads; a short
    /// pipeline keeps the connection busy while a fast client still cannot queue without bound.
    private static let maxWritesInFlight = 16

    /// Returns once all but the last few writes have been taken by the engine, so a fast client
    /// cannot queue without bound.
    public func write(_ data: ByteBuffer) async throws {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(data, promise: promise)
        let future = promise.futureResult
        let oldest: EventLoopFuture<Void>? = inFlight.withLockedValue { pending in
            pending.append(future)
            return pending.count > Self.maxWritesInFlight ? pending.removeFirst() : nil
        }
        try await oldest?.get()
    }

    public func closeInput() async {
        let pending = inFlight.withLockedValue { pending in
            defer { pending.removeAll() }
            return pending
        }
        for write in pending { _ = try? await write.get() }
        try? await channel.close(mode: .output).get()
    }

    public func close() async {
        try? await channel.close().get()
    }
}

/// The output of one stream; ends when the engine closes it.
public typealias DockerOutputSequence = EngineOutputSequence<DockerOutput>

/// Pipeline end of a raw stream: demultiplexes and hands the output to its feed, which holds
/// reads back while the consumer is behind and finishes the sequence at EOF.
final class DockerRawStreamHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let feed: EngineOutputFeed<DockerOutput>
    private var demux: DockerStreamDemultiplexer?

    init(feed: EngineOutputFeed<DockerOutput>, tty: Bool) {
        self.feed = feed
        self.demux = tty ? nil : DockerStreamDemultiplexer()
    }

    func handlerAdded(context: ChannelHandlerContext) { feed.handlerAdded(context: context) }

    func handlerRemoved(context: ChannelHandlerContext) { feed.handlerRemoved() }

    /// Output of the reads of one read burst, handed to the consumer together at read-complete
    /// (one wake-up of the consumer per burst instead of one per read).
    private var batch: [DockerOutput] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        collect(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
        context.fireChannelReadComplete()
    }

    /// Bytes that arrived together with the upgrade response.
    func deliver(_ buffer: ByteBuffer) {
        collect(buffer)
        flush()
    }

    private func collect(_ buffer: ByteBuffer) {
        guard !feed.isFinished else { return }
        if var demux {
            do {
                for (stream, payload) in try demux.feed(buffer) {
                    switch stream {
                    case .stdout: batch.append(.stdout(payload))
                    case .stderr: batch.append(.stderr(payload))
                    case .stdin: break
                    }
                }
                self.demux = demux
            } catch {
                flush()
                feed.fail(DockerError("DOCKER_PROTOCOL_ERROR", "\(error)"))
                return
            }
        } else {
            batch.append(.stdout(buffer))
        }
    }

    private func flush() {
        guard !batch.isEmpty else { return }
        let pieces = Self.coalesced(batch)
        batch.removeAll(keepingCapacity: true)
        feed.yield(contentsOf: pieces)
    }

    /// Joins neighbouring pieces of the same stream. The engine frames output in the program's
    /// write sizes (often 4-8 KiB); every piece costs the consumer a wake-up, an SSH packet and a
    /// socket write, so one copy into a larger piece is much cheaper than forwarding each.
    static func coalesced(_ pieces: [DockerOutput]) -> [DockerOutput] {
        guard pieces.count > 1 else { return pieces }
        var result: [DockerOutput] = []
        var index = 0
        while index < pieces.count {
            var end = index + 1
            var total = pieces[index].bytes.readableBytes
            while end < pieces.count, pieces[end].isStdout == pieces[index].isStdout {
                total += pieces[end].bytes.readableBytes
                end += 1
            }
            if end - index == 1 {
                result.append(pieces[index])
            } else {
                var joined = ByteBuffer()
                joined.reserveCapacity(total)
                for piece in pieces[index..<end] {
                    var bytes = piece.bytes
                    joined.writeBuffer(&bytes)
                }
                result.append(pieces[index].isStdout ? .stdout(joined) : .stderr(joined))
            }
            index = end
        }
        return result
    }

    func read(context: ChannelHandlerContext) { feed.read(context: context) }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            finish()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        flush()
        feed.fail(DockerError("DOCKER_PROTOCOL_ERROR", "stream error: \(error)"))
    }

    /// What was read before the end goes out first.
    private func finish() {
        flush()
        feed.finish()
    }
}
