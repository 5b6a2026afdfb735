import BerthCore
import Logging
import NIOCore
import NIOSSH

/// A request on a session channel, translated out of the SSH library's types.
enum SessionRequest: Sendable {
    case env(name: String, value: String)
    case pty(PtyRequest)
    case shell
    case exec(String)
    case subsystem(String)
    case windowChange(WindowSize)
    case signal(String)

    var kind: SessionRequestRules.Kind {
        switch self {
        case .env: return .env
        case .pty: return .pty
        case .shell, .exec, .subsystem: return .program
        case .windowChange: return .windowChange
        case .signal: return .signal
        }
    }

    init?(_ event: Any) {
        switch event {
        case let request as SSHChannelRequestEvent.EnvironmentRequest:
            self = .env(name: request.name, value: request.value)
        case let request as SSHChannelRequestEvent.PseudoTerminalRequest:
            var modes: [UInt8: UInt32] = [:]
            for (opcode, value) in request.terminalModes.modeMapping { modes[opcode.rawValue] = value.rawValue }
            self = .pty(PtyRequest(
                term: request.term, columns: UInt32(clamping: request.terminalCharacterWidth), rows: UInt32(clamping: request.terminalRowHeight),
                widthPixels: UInt32(clamping: request.terminalPixelWidth), heightPixels: UInt32(clamping: request.terminalPixelHeight), modes: modes))
        case is SSHChannelRequestEvent.ShellRequest:
            self = .shell
        case let request as SSHChannelRequestEvent.ExecRequest:
            self = .exec(request.command)
        case let request as SSHChannelRequestEvent.SubsystemRequest:
            self = .subsystem(request.subsystem)
        case let request as SSHChannelRequestEvent.WindowChangeRequest:
            self = .windowChange(WindowSize(
                columns: UInt32(clamping: request.terminalCharacterWidth), rows: UInt32(clamping: request.terminalRowHeight),
                widthPixels: UInt32(clamping: request.terminalPixelWidth), heightPixels: UInt32(clamping: request.terminalPixelHeight)))
        case let request as SSHChannelRequestEvent.SignalRequest:
            self = .signal(request.signal)
        default:
            return nil
        }
    }

    static func wantsReply(_ event: Any) -> Bool {
        switch event {
        case let request as SSHChannelRequestEvent.EnvironmentRequest: return request.wantReply
        case let request as SSHChannelRequestEvent.PseudoTerminalRequest: return request.wantReply
        case let request as SSHChannelRequestEvent.ShellRequest: return request.wantReply
        case let request as SSHChannelRequestEvent.ExecRequest: return request.wantReply
        case let request as SSHChannelRequestEvent.SubsystemRequest: return request.wantReply
        default: return false
        }
    }
}

enum SessionEvent: Sendable {
    case request(SessionRequest, wantReply: Bool)
    case closed
}

/// The NIO side of a session or forwarding channel: turns client data into `SessionInput`,
/// channel requests (sessions only) into an ordered event stream, and holds reads back while the
/// backend is not consuming.
final class SessionChannelBridge: ChannelDuplexHandler {
    typealias InboundIn = SSHChannelData
    typealias OutboundIn = SSHChannelData
    typealias OutboundOut = SSHChannelData

    private let events: AsyncStream<SessionEvent>.Continuation?
    private let input: SessionInputSource
    private let active: EventLoopPromise<Void>?
    private var context: ChannelHandlerContext?
    private var gate = ReadGate()

    /// `active` completes once the channel is open on both ends, so nothing is written earlier.
    init(events: AsyncStream<SessionEvent>.Continuation?, input: SessionInputSource, active: EventLoopPromise<Void>? = nil) {
        self.events = events
        self.input = input
        self.active = active
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { active?.succeed() }
    }

    func channelActive(context: ChannelHandlerContext) {
        active?.succeed()
        context.fireChannelActive()
    }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        // Extended data from a client has no meaning for a session; drop it.
        guard message.type == .channel, case .byteBuffer(let buffer) = message.data else { return }
        if !input.yield(buffer) { gate.pause() }
    }

    func read(context: ChannelHandlerContext) {
        if gate.shouldRead() { context.read() }
    }

    /// Called on the event loop when the backend wants more input.
    func resumeReading() {
        if gate.resume() { context?.read() }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let channelEvent = event as? ChannelEvent, channelEvent == .inputClosed {
            input.finish()
        } else if let events, let request = SessionRequest(event) {
            events.yield(.request(request, wantReply: SessionRequest.wantsReply(event)))
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        input.finish()
        events?.yield(.closed)
        events?.finish()
        active?.fail(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }
}
