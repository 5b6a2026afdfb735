import BerthConfig
import BerthCore
import Foundation
import NIOCore
import NIOHTTP1

/// One HTTP/1.1 exchange at a time: collects the body, asks `WebhookAnswers`, writes JSON.
final class WebhookHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let answers: WebhookAnswers
    private let recorder: RequestRecorder?
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(answers: WebhookAnswers, recorder: RequestRecorder?) {
        self.answers = answers
        self.recorder = recorder
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            respond(context: context, head: head)
            self.head = nil
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let path = String(head.uri.split(separator: "?").first ?? "")
        var request = try? JSONCoding.decode(ConfigValue.self, from: body.readableBytesView)
        if case .object? = request {} else { request = nil }
        recorder?.record(path: path, body: request ?? .object([]))
        let endpoint = String(path.split(separator: "/").last ?? "")
        var status = HTTPResponseStatus.ok
        var reply: ConfigValue
        if head.method != .POST {
            status = .methodNotAllowed
            reply = .object([("error", .string("use POST"))])
        } else if let request, let answer = answers.answer(endpoint: endpoint, request: request) {
            reply = answer
        } else if request == nil {
            status = .badRequest
            reply = .object([("success", .bool(false)), ("error", .string("body is not a JSON object"))])
        } else {
            status = .notFound
            reply = .object([("error", .string("unknown endpoint \(path)"))])
        }
        let data = Array(ConfigRenderer.compactJSON(reply, sortedKeys: true).utf8)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Content-Length", value: String(data.count))
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(bytes: data)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}
