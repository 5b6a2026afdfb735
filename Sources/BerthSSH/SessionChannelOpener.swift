import BerthCore
import Logging
import NIOCore
import NIOSSH

/// Sets up child channels the client opens: session and `direct-tcpip` channels are handed to
/// the layer stack once the connection's environment is ready; every other type is refused.
struct SessionChannelOpener {
    let connection: SSHConnection

    func open(_ child: Channel, type: SSHChannelType) -> EventLoopFuture<Void> {
        if case .directTCPIP(let target) = type {
            let connection = self.connection
            return connection.sshHandler.futureResult.flatMap { handler in
                Self.openDirect(child, target: target, handler: handler, connection: connection)
            }
        }
        guard case .session = type else {
            let name = Self.name(of: type)
            connection.logger.log(.info, "SSH_UNSUPPORTED_CHANNEL_TYPE", "unsupported channel type \(name)")
            connection.sshHandler.futureResult.whenSuccess { handler in
                Task { await handler.onUnsupportedChannel(type: name) }
            }
            return child.eventLoop.makeFailedFuture(ChannelRejection(.unknownChannelType, "unsupported channel type"))
        }
        let connection = self.connection
        let earlierRequests = connection.globalRequestsSettled()
        return connection.sshHandler.futureResult.and(earlierRequests).flatMap { handler, _ in
            Self.openSession(child, handler: handler, connection: connection)
        }
    }

    private static func openSession(_ child: Channel, handler: any SSHConnectionHandler, connection: SSHConnection) -> EventLoopFuture<Void> {
        let channelID = connection.allocateChannelID()
        let (events, continuation) = AsyncStream.makeStream(of: SessionEvent.self)
        let bridgeBox = NIOLoopBoundBox<SessionChannelBridge?>(nil, eventLoop: child.eventLoop)
        let input = SessionInputSource(eventLoop: child.eventLoop) { bridgeBox.value?.resumeReading() }
        let session = NIOSessionChannel(channel: child, channelID: channelID, connection: connection.authenticatedMetadata, stdin: input.makeInput())
        var logger = connection.logger
        logger[metadataKey: LogKey.channelID] = "\(channelID)"
        let channelLogger = logger

        // Without half-closure a client's EOF would close the whole channel and lose output.
        return child.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMap {
            child.eventLoop.makeFutureWithTask { try await handler.onSessionChannel(session) }
        }.flatMapThrowing { sessionHandler in
            let bridge = SessionChannelBridge(events: continuation, input: input)
            bridgeBox.value = bridge
            try child.pipeline.syncOperations.addHandler(bridge)
            connection.sessionOpened()
            child.closeFuture.whenComplete { _ in connection.sessionClosed() }
            let processor = SessionRequestProcessor(handler: sessionHandler, session: session, channel: child, logger: channelLogger)
            Task { await processor.run(events) }
        }.flatMapErrorThrowing { error in
            channelLogger.log(.info, "SSH_CHANNEL_REJECTED", "session channel refused: \(error)")
            continuation.finish()
            input.finish()
            throw error
        }
    }

    private static func openDirect(_ child: Channel, target: SSHChannelType.DirectTCPIP, handler: any SSHConnectionHandler,
                                   connection: SSHConnection) -> EventLoopFuture<Void> {
        let request = DirectForward(host: target.targetHost, port: UInt32(target.targetPort),
                                    originatorHost: target.originatorAddress.ipAddress ?? "", originatorPort: UInt32(target.originatorAddress.port ?? 0))
        return child.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
            try NIOForwardChannel.attach(to: child, channelID: connection.allocateChannelID())
        }.flatMap { channel in
            child.eventLoop.makeFutureWithTask { try await handler.onDirectForward(request, channel: channel) }
        }.flatMapErrorThrowing { error in
            connection.logger.log(.info, "SSH_CHANNEL_REJECTED", "direct-tcpip to \(request.host):\(request.port) refused: \(error)")
            throw error
        }
    }

    private static func name(of type: SSHChannelType) -> String {
        switch type {
        case .session: return "session"
        case .directTCPIP: return "direct-tcpip"
        case .forwardedTCPIP: return "forwarded-tcpip"
        }
    }
}
