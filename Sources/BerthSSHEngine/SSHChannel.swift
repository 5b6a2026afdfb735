import BerthSSHWire
import NIOCore

/// One channel of the connection protocol (RFC 4254 §5), bound to the connection's event loop.
/// Every method must be called on that loop.
public final class SSHChannel {
    enum State {
        /// The client opened it; the delegate has not answered yet.
        case openingInbound
        /// We opened it; the client has not answered yet.
        case openingOutbound(EventLoopPromise<SSHChannel>)
        case open
        /// CLOSE went both ways (or the connection ended).
        case closed
    }

    public var delegate: (any SSHChannelDelegate)?
    public let localID: UInt32
    /// The channel type from CHANNEL_OPEN ("session", "direct-tcpip", "forwarded-tcpip", …).
    public let type: String
    public let eventLoop: any EventLoop
    /// The type-specific data of the peer's CHANNEL_OPEN (empty for channels we opened), so a
    /// relay can pass on a type it does not know.
    public internal(set) var openPayload = ByteBuffer()

    weak var handler: SSHServerHandler?
    var state: State
    var remoteID: UInt32 = 0
    var peerWindow: UInt64 = 0
    var peerMaxPacket: Int = 0
    var inboundWindow: SSHInboundWindow
    var outbound = SSHChannelOutboundQueue()
    var inboundReplies = SSHOrderedReplies<Bool>()
    /// A program-starting request (shell, exec, subsystem) not yet answered: the channel's
    /// output waits for its reply, so a program that finishes at once cannot have its output,
    /// EOF and CLOSE overtake the reply (clients then report the channel closed).
    var outputHeldFor: UInt64?
    var outstandingRequests = CircularBuffer<EventLoopPromise<Bool>?>()
    var closePromises: [EventLoopPromise<Void>] = []
    var nextRequestID: UInt64 = 0
    var eofQueued = false
    var eofReceived = false
    var closeQueued = false
    var closeSent = false
    var closeReceived = false
    let highWaterMark: Int
    private(set) var lastReportedWritable = true

    init(
        localID: UInt32, type: String, state: State, windowSize: UInt32, highWaterMark: Int,
        eventLoop: any EventLoop, handler: SSHServerHandler
    ) {
        self.localID = localID
        self.type = type
        self.state = state
        self.eventLoop = eventLoop
        self.handler = handler
        self.highWaterMark = highWaterMark
        inboundWindow = SSHInboundWindow(size: windowSize)
    }

    /// Below the high-water mark of queued output and not closing. Turns false while the peer's
    /// window is shut, a key exchange runs or the socket is backed up, because output then queues.
    public var isWritable: Bool {
        outbound.queuedBytes < highWaterMark && !closeQueued && !closeSent && !isClosed
    }

    public var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// Bytes written but not yet handed to the connection.
    public var queuedBytes: Int { outbound.queuedBytes }

    /// Queues data; the promise completes when the last byte was handed to the connection (the
    /// peer's window allowed it). Writes are held while a key exchange runs: nothing is lost or
    /// reordered.
    public func write(_ data: ByteBuffer, extendedType: UInt32? = nil, promise: EventLoopPromise<Void>?) {
        eventLoop.preconditionInEventLoop()
        if let error = refusal(afterEOF: true) {
            promise?.fail(error)
            return
        }
        outbound.append(.data(data, extendedType: extendedType, promise: promise))
        reportWritabilityIfChanged()
        handler?.channelHasOutput()
    }

    /// The consumer has taken `bytes` of received data: the engine reopens the peer's window.
    public func consumed(_ bytes: Int) {
        eventLoop.preconditionInEventLoop()
        guard let adjust = inboundWindow.consume(bytes), !closeSent, !closeReceived, !isClosed else { return }
        handler?.sendChannelMessage(SSHMessageWriter.channelWindowAdjust(recipient: remoteID, bytes: adjust), for: self)
    }

    public func reply(to request: SSHChannelRequest, success: Bool) {
        eventLoop.preconditionInEventLoop()
        guard request.wantReply, inboundReplies.answer(id: request.id, with: success) else { return }
        var released = false
        while let (id, answer) = inboundReplies.popReady() {
            if id == outputHeldFor {
                outputHeldFor = nil
                released = true
            }
            guard !closeSent, !isClosed else { continue }
            handler?.sendChannelMessage(
                SSHMessageWriter.channel(answer ? SSHMessageNumber.channelSuccess : SSHMessageNumber.channelFailure, recipient: remoteID),
                for: self)
        }
        if released, !outbound.isEmpty { handler?.channelHasOutput() }
    }

    /// Sent behind all data written before it (exit-status after the last output byte). The
    /// promise gets the peer's answer when `wantReply`, else true once sent.
    public func sendRequest(type: String, wantReply: Bool, payload: ByteBuffer, promise: EventLoopPromise<Bool>?) {
        eventLoop.preconditionInEventLoop()
        if let error = refusal(afterEOF: false) {
            promise?.fail(error)
            return
        }
        outbound.append(.request(type: type, wantReply: wantReply, payload: payload, promise: promise))
        handler?.channelHasOutput()
    }

    /// EOF behind the data written before it; later writes fail.
    public func sendEOF(promise: EventLoopPromise<Void>?) {
        eventLoop.preconditionInEventLoop()
        if let error = refusal(afterEOF: true) {
            promise?.fail(error)
            return
        }
        eofQueued = true
        outbound.append(.eof(promise))
        handler?.channelHasOutput()
    }

    /// CLOSE behind everything queued before it; the promise completes when the channel is
    /// closed both ways (or the connection ended).
    public func close(promise: EventLoopPromise<Void>?) {
        eventLoop.preconditionInEventLoop()
        if isClosed {
            promise?.succeed(())
            return
        }
        if let promise { closePromises.append(promise) }
        guard !closeQueued, !closeSent else { return }
        closeQueued = true
        outbound.append(.close(nil))
        reportWritabilityIfChanged()
        handler?.channelHasOutput()
    }

    private func refusal(afterEOF: Bool) -> SSHChannelError? {
        if isClosed || closeQueued || closeSent || handler == nil { return .closed }
        if afterEOF && eofQueued { return .eofSent }
        return nil
    }

    func reportWritabilityIfChanged() {
        let writable = isWritable
        guard writable != lastReportedWritable else { return }
        lastReportedWritable = writable
        delegate?.sshChannelWritabilityChanged(self)
    }
}
