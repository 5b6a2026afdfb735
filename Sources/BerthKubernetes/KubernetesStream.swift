import BerthConfig
import BerthCore
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOWebSocket

/// What an exec or attach stream delivers.
enum KubernetesOutput: Sendable {
    case stdout(ByteBuffer)
    case stderr(ByteBuffer)
    /// The status channel: the exit code, or the API server's reason when there is none.
    case status(exitCode: Int?, message: String)
}

extension KubernetesOutput: ProgramStreamOutput {
    /// A status is not output: its message explains an exit code the pod status may lack.
    var pumpPiece: ProgramStreamPump.Piece {
        switch self {
        case .stdout(let bytes): .stdout(bytes)
        case .stderr(let bytes): .stderr(bytes)
        case .status(_, let message): .note(message)
        }
    }
}

/// An exec/attach connection over the WebSocket streaming protocol (`v5.channel.k8s.io`, else
/// `v4.channel.k8s.io`): every binary message starts with its channel number, 0 stdin, 1 stdout,
/// 2 stderr, 3 status, 4 resize, and in v5 255 to close a stream. Output has backpressure: reads
/// stop while the consumer is behind.
final class KubernetesStream: EngineProgramStream {
    let output: KubernetesOutputSequence
    let version: Int
    private let channel: Channel

    private init(channel: Channel, output: KubernetesOutputSequence, version: Int) {
        self.channel = channel
        self.output = output
        self.version = version
    }

    static let protocols = ["v5.channel.k8s.io", "v4.channel.k8s.io"]

    /// Opens `pathAndQuery` (…/exec?command=…) on the API server.
    static func open(endpoint: KubernetesEndpoint, pathAndQuery: String, timeout: Duration) async throws -> KubernetesStream {
        let group = MultiThreadedEventLoopGroup.singleton
        let ready = group.next().makePromise(of: KubernetesStream.self)
        let sslContext = try endpoint.tls.map { try NIOSSLContext(configuration: $0) }
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let sslContext {
                        try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: sslContext, serverHostname: endpoint.tlsServerHostname))
                    }
                }.flatMap {
                    let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 20) { channel, response in
                        let negotiated = response.headers.first(name: "Sec-WebSocket-Protocol") ?? ""
                        let version = negotiated.hasPrefix("v5.") ? 5 : 4
                        // The refusal catcher sits where the WebSocket bytes will flow now.
                        return channel.pipeline.syncOperations.removeHandler(name: UpgradeRefusalCatcher.name).flatMapThrowing {
                            let (feed, output) = EngineOutputFeed<KubernetesOutput>.make(eventLoop: channel.eventLoop)
                            let handler = KubernetesFrameHandler(feed: feed)
                            try channel.pipeline.syncOperations.addHandler(
                                NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 1024, maxAccumulatedFrameSize: 8 << 20))
                            try channel.pipeline.syncOperations.addHandler(handler)
                            ready.succeed(KubernetesStream(channel: channel, output: output, version: version))
                        }
                    }
                    return channel.pipeline.addHTTPClientHandlers(withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in })).flatMap {
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(UpgradeRefusalCatcher(ready: ready), name: UpgradeRefusalCatcher.name)
                        }
                    }
                }
            }
        let channel = try await bootstrap.connect(host: endpoint.host, port: endpoint.port).get()
        channel.closeFuture.whenComplete { _ in ready.fail(KubernetesError("KUBERNETES_STREAM_FAILED", "the API server closed the connection before the stream opened")) }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(endpoint.host):\(endpoint.port)")
        headers.add(name: "User-Agent", value: "Berth")
        headers.add(name: "Sec-WebSocket-Protocol", value: protocols.joined(separator: ", "))
        let token = endpoint.currentToken()
        if !token.isEmpty { headers.add(name: "Authorization", value: "Bearer \(token)") }
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: endpoint.pathPrefix + pathAndQuery, headers: headers)
        channel.write(HTTPClientRequestPart.head(head), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        do {
            return try await withDeadline(timeout, KubernetesError("KUBERNETES_STREAM_FAILED", "the stream did not open within \(timeout)")) {
                try await ready.futureResult.get()
            }
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }

    func write(_ data: ByteBuffer) async throws {
        try await send(channel: 0, data)
    }

    func resize(columns: UInt32, rows: UInt32) async throws {
        try await send(channel: 4, ByteBuffer(string: #"{"Width":\#(columns),"Height":\#(rows)}"#))
    }

    /// Only v5 can say stdin EOF (v4 has no way to close one stream).
    func closeInput() async {
        guard version >= 5 else { return }
        try? await send(channel: 255, ByteBuffer(bytes: [0]))
    }

    func close() async {
        try? await channel.close().get()
    }

    private func send(channel number: UInt8, _ data: ByteBuffer) async throws {
        var frame = channel.allocator.buffer(capacity: data.readableBytes + 1)
        frame.writeInteger(number)
        frame.writeImmutableBuffer(data)
        // Clients must mask what they send (RFC 6455 §5.3).
        try await channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .binary, maskKey: .random(), data: frame)).get()
    }
}

/// Reports a refused upgrade (the API server answered with JSON instead of switching).
private final class UpgradeRefusalCatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPClientResponsePart
    static let name = "berth-upgrade-refusal"
    private let ready: EventLoopPromise<KubernetesStream>
    private var status: HTTPResponseStatus?
    private var body = ""

    init(ready: EventLoopPromise<KubernetesStream>) { self.ready = ready }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): status = head.status
        case .body(let buffer): body += String(buffer: buffer)
        case .end:
            ready.fail(KubernetesError("KUBERNETES_STREAM_REFUSED", "the API server refused the stream: \(status?.code ?? 0) \(body.prefix(300))"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        ready.fail(KubernetesError("KUBERNETES_STREAM_FAILED", "opening the stream failed: \(error)"))
        context.close(promise: nil)
    }
}

typealias KubernetesOutputSequence = EngineOutputSequence<KubernetesOutput>

/// Splits incoming messages by channel into its feed, answers pings, ends the feed on close.
final class KubernetesFrameHandler: ChannelDuplexHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    private let feed: EngineOutputFeed<KubernetesOutput>

    init(feed: EngineOutputFeed<KubernetesOutput>) { self.feed = feed }

    func handlerAdded(context: ChannelHandlerContext) { feed.handlerAdded(context: context) }

    func handlerRemoved(context: ChannelHandlerContext) { feed.handlerRemoved() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text:
            var payload = frame.unmaskedData
            guard let number = payload.readInteger(as: UInt8.self), !feed.isFinished else { return }
            let item: KubernetesOutput
            switch number {
            case 1: item = .stdout(payload)
            case 2: item = .stderr(payload)
            case 3: item = KubernetesStatus.parse(String(buffer: payload))
            default: return
            }
            if payload.readableBytes == 0, number != 3 { return }
            feed.yield(item)
        case .ping:
            let pong = WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .connectionClose:
            feed.finish()
            var reply = context.channel.allocator.buffer(capacity: 2)
            reply.write(webSocketErrorCode: .normalClosure)
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: reply))).whenComplete { _ in
                channel.close(promise: nil)
            }
        default:
            break
        }
    }

    func read(context: ChannelHandlerContext) { feed.read(context: context) }

    func channelInactive(context: ChannelHandlerContext) {
        feed.finish()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        feed.fail(KubernetesError("KUBERNETES_STREAM_FAILED", "stream error: \(error)"))
    }
}

/// The v1 Status on channel 3: Success is exit code 0; NonZeroExitCode carries the code in
/// its ExitCode cause; anything else is an error message without a code.
enum KubernetesStatus {
    static func parse(_ text: String) -> KubernetesOutput {
        guard let value = try? ConfigValue.parse(text, format: .json, source: "Kubernetes API") else { return .status(exitCode: nil, message: text) }
        if value["status"] == .string("Success") { return .status(exitCode: 0, message: "") }
        let message = value["message"]?.stringValue ?? text
        if value["reason"] == .string("NonZeroExitCode"), case .array(let causes)? = value["details"]?["causes"] {
            for cause in causes where cause["reason"] == .string("ExitCode") {
                if case .string(let code)? = cause["message"], let number = Int(code) { return .status(exitCode: number, message: message) }
            }
        }
        return .status(exitCode: nil, message: message)
    }
}
