import NIOCore
import NIOHTTP1

/// The engine's answer to a plain API call.
public struct DockerResponse: Sendable {
    public let status: Int
    public let body: [UInt8]

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Collects one HTTP response on a fresh connection.
final class DockerResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart

    private let promise: EventLoopPromise<DockerResponse>
    private let limit: Int
    private var status = 0
    private var body: [UInt8] = []

    init(promise: EventLoopPromise<DockerResponse>, limit: Int = 64 << 20) {
        self.promise = promise
        self.limit = limit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = Int(head.status.code)
        case .body(let chunk):
            guard body.count + chunk.readableBytes <= limit else {
                promise.fail(DockerError("DOCKER_PROTOCOL_ERROR", "engine response larger than \(limit) bytes"))
                context.close(promise: nil)
                return
            }
            body += chunk.readableBytesView
        case .end:
            promise.succeed(DockerResponse(status: status, body: body))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(DockerError("DOCKER_PROTOCOL_ERROR", "the engine closed the connection before answering"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(DockerError("DOCKER_PROTOCOL_ERROR", "engine connection error: \(error)"))
        context.close(promise: nil)
    }
}

/// Reads the response to an `Upgrade: tcp` request. On `101` the connection becomes a raw
/// stream and any bytes after the header belong to it; otherwise the error body is collected.
final class DockerUpgradeResponseParser: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Outcome {
        case upgraded
        case refused(DockerResponse)
    }

    private let promise: EventLoopPromise<Outcome>
    private let streamHandler: DockerRawStreamHandler
    private var buffer = ByteBuffer()
    private var refusal: (status: Int, contentLength: Int?, headerEnd: Int)?

    init(promise: EventLoopPromise<Outcome>, streamHandler: DockerRawStreamHandler) {
        self.promise = promise
        self.streamHandler = streamHandler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var chunk = unwrapInboundIn(data)
        buffer.writeBuffer(&chunk)
        if let refusal {
            finishRefusalIfComplete(context: context, refusal)
            return
        }
        let bytes = buffer.readableBytesView
        guard let end = bytes.firstRange(of: [13, 10, 13, 10]) else { return }
        let headerLength = end.upperBound - bytes.startIndex
        let header = String(decoding: bytes[bytes.startIndex..<end.lowerBound], as: UTF8.self)
        let lines = header.split(separator: "\r\n")
        let status = lines.first.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        if status == 101 {
            // Hand over in place, so no byte can reach this parser after the header.
            buffer.moveReaderIndex(forwardBy: headerLength)
            let leftover = buffer.readSlice(length: buffer.readableBytes) ?? ByteBuffer()
            do {
                try context.pipeline.syncOperations.addHandler(streamHandler, position: .after(self))
                context.pipeline.syncOperations.removeHandler(self, promise: nil)
            } catch {
                promise.fail(DockerError("DOCKER_PROTOCOL_ERROR", "cannot set up the stream: \(error)"))
                context.close(promise: nil)
                return
            }
            promise.succeed(.upgraded)
            if leftover.readableBytes > 0 { streamHandler.deliver(leftover) }
            return
        }
        let length = lines.dropFirst().first { $0.lowercased().hasPrefix("content-length:") }
            .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) }
        let pending = (status: status, contentLength: length, headerEnd: headerLength)
        refusal = pending
        finishRefusalIfComplete(context: context, pending)
    }

    private func finishRefusalIfComplete(context: ChannelHandlerContext, _ refusal: (status: Int, contentLength: Int?, headerEnd: Int)) {
        guard let length = refusal.contentLength, buffer.readableBytes - refusal.headerEnd >= length else { return }
        let body = Array(buffer.readableBytesView.dropFirst(refusal.headerEnd).prefix(length))
        promise.succeed(.refused(DockerResponse(status: refusal.status, body: body)))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let refusal {
            promise.succeed(.refused(DockerResponse(status: refusal.status, body: Array(buffer.readableBytesView.dropFirst(refusal.headerEnd)))))
        } else {
            promise.fail(DockerError("DOCKER_PROTOCOL_ERROR", "the engine closed the connection during the stream upgrade"))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(DockerError("DOCKER_PROTOCOL_ERROR", "engine connection error: \(error)"))
        context.close(promise: nil)
    }
}
