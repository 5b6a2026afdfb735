import BerthCore
import NIOConcurrencyHelpers
import NIOCore
import NIOSSH

/// What the upstream session channel reports, in order.
enum UpstreamEvent: Sendable {
    case stdout(ByteBuffer)
    case stderr(ByteBuffer)
    case exitStatus(UInt32)
    case exitSignal(name: String, coreDumped: Bool, message: String)
    case eof
    case closed
}

/// Pipeline end of an upstream session channel: forwards its output and exit reports as
/// ordered events (holding reads while the client is behind) and matches request replies.
final class UpstreamRelay: ChannelDuplexHandler, ConsumerDemandTarget {
    typealias InboundIn = SSHChannelData
    typealias OutboundIn = SSHChannelData
    typealias OutboundOut = SSHChannelData

    typealias Events = NIOAsyncSequenceProducer<UpstreamEvent, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark, ConsumerDemand<UpstreamRelay>>

    private let source: Events.Source
    private var pendingReplies: [EventLoopPromise<Bool>] = []
    private var context: ChannelHandlerContext?
    private var gate = ReadGate()
    private var finished = false

    static func make(eventLoop: EventLoop) -> (UpstreamRelay, Events) {
        let delegate = ConsumerDemand<UpstreamRelay>(eventLoop: eventLoop)
        let result = Events.makeSequence(
            elementType: UpstreamEvent.self, backPressureStrategy: .init(lowWatermark: 4, highWatermark: 16),
            finishOnDeinit: false, delegate: delegate)
        let relay = UpstreamRelay(source: result.source)
        delegate.target = relay
        return (relay, result.sequence)
    }

    private init(source: Events.Source) { self.source = source }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    /// Sends a request that wants a reply; `reply` completes with the upstream's answer.
    func send(_ request: Any, reply: EventLoopPromise<Bool>) {
        guard let context else {
            reply.succeed(false)
            return
        }
        pendingReplies.append(reply)
        context.triggerUserOutboundEvent(request, promise: nil)
    }

    private func emit(_ event: UpstreamEvent) {
        guard !finished else { return }
        if case .stopProducing = source.yield(event) { gate.pause() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        guard case .byteBuffer(let bytes) = message.data else { return }
        emit(message.type == .stdErr ? .stderr(bytes) : .stdout(bytes))
    }

    func read(context: ChannelHandlerContext) {
        if gate.shouldRead() { context.read() }
    }

    func resume() {
        if gate.resume() { context?.read() }
    }

    /// The session ended on the client side; the channel is closed by `ProxySession.onClose`.
    func consumerGone() {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let status as SSHChannelRequestEvent.ExitStatus:
            emit(.exitStatus(UInt32(truncatingIfNeeded: status.exitStatus)))
        case let signal as SSHChannelRequestEvent.ExitSignal:
            emit(.exitSignal(name: signal.signalName, coreDumped: signal.dumpedCore, message: signal.errorMessage))
        case is ChannelSuccessEvent:
            if !pendingReplies.isEmpty { pendingReplies.removeFirst().succeed(true) }
        case is ChannelFailureEvent:
            if !pendingReplies.isEmpty { pendingReplies.removeFirst().succeed(false) }
        case let channelEvent as ChannelEvent where channelEvent == .inputClosed:
            emit(.eof)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        for reply in pendingReplies { reply.succeed(false) }
        pendingReplies.removeAll()
        emit(.closed)
        finished = true
        source.finish()
        context.fireChannelInactive()
    }
}
