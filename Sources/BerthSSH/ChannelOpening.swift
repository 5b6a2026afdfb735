import BerthCore
import BerthSSHEngine
import Logging
import NIOCore

/// Sets up the channels a client opens: session and `direct-tcpip` channels are handed to the
/// layer stack once the connection's environment is ready.
enum ChannelOpening {
    static func session(
        _ channel: NIOLoopBound<SSHChannel>, handler: any SSHConnectionHandler, connection: SSHConnection, opener: EngineForwardedChannelOpener
    ) -> EventLoopFuture<Void> {
        let eventLoop = channel.eventLoop
        let channelID = connection.allocateChannelID()
        let (events, continuation) = AsyncStream.makeStream(of: SessionEvent.self)
        let input = SessionInputSource()
        let stdin = input.makeInput(eventLoop: eventLoop) { bytes in ChannelOpening.consumed(bytes, on: channel) }
        let session = EngineSessionChannel(
            writer: ChannelWriter(channel: channel), channelID: channelID,
            connection: connection.authenticatedMetadata, stdin: stdin)
        var logger = connection.logger
        logger[metadataKey: LogKey.channelID] = "\(channelID)"
        let channelLogger = logger

        // Counted from before the layers see the channel: a session still being set up when the
        // connection ends is waited for too (SSHConnection.closed).
        connection.sessionHandlerStarted()
        return eventLoop.makeFutureWithTask {
            try await ConnectionContext.$eventLoop.withValue(eventLoop) { try await handler.onSessionChannel(session) }
        }.flatMapThrowing { sessionHandler in
            let closed = eventLoop.makePromise(of: Void.self)
            let bridge = ChannelBridge(input: input, events: continuation, closed: closed)
            channel.value.delegate = bridge
            connection.sessionOpened()
            closed.futureResult.whenComplete { _ in connection.sessionClosed() }
            let processor = SessionRequestProcessor(handler: sessionHandler, session: session, logger: channelLogger, opener: opener)
            Task {
                await ConnectionContext.$eventLoop.withValue(eventLoop) { await processor.run(events) }
                connection.sessionHandlerFinished()
            }
            // The connection may have ended while the backend prepared the session.
            if channel.value.isClosed { bridge.finish() }
        }.flatMapErrorThrowing { error in
            channelLogger.log(.info, "SSH_CHANNEL_REJECTED", "session channel refused: \(error)")
            connection.sessionHandlerFinished()
            continuation.finish()
            input.finish()
            throw error
        }
    }

    static func direct(
        _ channel: NIOLoopBound<SSHChannel>, forward: DirectForward, handler: any SSHConnectionHandler,
        connection: SSHConnection
    ) -> EventLoopFuture<Void> {
        let eventLoop = channel.eventLoop
        let (bridge, forwardChannel) = attach(channel, channelID: connection.allocateChannelID())
        // Set before the answer: the backend may start writing as soon as the target connected,
        // and the engine holds those bytes until the open is confirmed.
        channel.value.delegate = bridge
        let boundBridge = NIOLoopBound(bridge, eventLoop: eventLoop)
        return eventLoop.makeFutureWithTask {
            try await handler.onDirectForward(forward, channel: forwardChannel)
        }.flatMapErrorThrowing { error in
            connection.logger.log(.info, "SSH_CHANNEL_REJECTED", "direct-tcpip to \(forward.host):\(forward.port) refused: \(error)")
            boundBridge.value.finish()
            throw error
        }
    }

    static func directStreamLocal(
        _ channel: NIOLoopBound<SSHChannel>, path: String, handler: any SSHConnectionHandler, connection: SSHConnection
    ) -> EventLoopFuture<Void> {
        let eventLoop = channel.eventLoop
        let (bridge, forwardChannel) = attach(channel, channelID: connection.allocateChannelID())
        channel.value.delegate = bridge
        let boundBridge = NIOLoopBound(bridge, eventLoop: eventLoop)
        return eventLoop.makeFutureWithTask {
            try await handler.onDirectStreamLocal(path: path, channel: forwardChannel)
        }.flatMapErrorThrowing { error in
            connection.logger.log(.info, "SSH_CHANNEL_REJECTED", "direct-streamlocal to \(path) refused: \(error)")
            boundBridge.value.finish()
            throw error
        }
    }

    /// Reopens the client's window for input the backend has passed on.
    static func consumed(_ bytes: Int, on channel: NIOLoopBound<SSHChannel>) {
        if channel.eventLoop.inEventLoop {
            channel.value.consumed(bytes)
        } else {
            channel.eventLoop.execute { channel.value.consumed(bytes) }
        }
    }

    /// The bridge and Core's view of a forwarding channel; call on the event loop.
    static func attach(_ channel: NIOLoopBound<SSHChannel>, channelID: UInt64) -> (ChannelBridge, EngineForwardChannel) {
        let end = ForwardEnd(eventLoop: channel.eventLoop)
        return (end.bridge, end.forwardChannel(on: channel, channelID: channelID))
    }
}

/// The receiving half of a forwarding channel, made before the channel exists when Berth opens
/// it (the engine wants the delegate with the open).
struct ForwardEnd {
    let bridge: ChannelBridge
    private let input = SessionInputSource()
    private let closed: EventLoopPromise<Void>

    init(eventLoop: any EventLoop) {
        closed = eventLoop.makePromise(of: Void.self)
        bridge = ChannelBridge(input: input, events: nil, closed: closed)
    }

    func forwardChannel(on channel: NIOLoopBound<SSHChannel>, channelID: UInt64) -> EngineForwardChannel {
        let eventLoop = channel.eventLoop
        let stdin = input.makeInput(eventLoop: eventLoop) { bytes in ChannelOpening.consumed(bytes, on: channel) }
        return EngineForwardChannel(writer: ChannelWriter(channel: channel), channelID: channelID, input: stdin, closed: closed.futureResult)
    }
}
