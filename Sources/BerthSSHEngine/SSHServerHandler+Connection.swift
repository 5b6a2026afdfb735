import BerthSSHWire
import NIOCore

// RFC 4254 connection protocol: channels, windows, channel and global requests.
extension SSHServerHandler {
    func receivedConnectionMessage(_ message: SSHMessage) throws {
        switch message {
        case .globalRequest(let type, let wantReply, let data):
            try receivedGlobalRequest(type: type, wantReply: wantReply, data: data)
        case .requestSuccess(let data):
            guard let promise = outstandingGlobalRequests.popFirst() else {
                throw SSHProtocolError("SSH_UNEXPECTED_GLOBAL_REPLY", "REQUEST_SUCCESS without a global request waiting for it")
            }
            promise?.succeed(data)
        case .requestFailure:
            guard let promise = outstandingGlobalRequests.popFirst() else {
                throw SSHProtocolError("SSH_UNEXPECTED_GLOBAL_REPLY", "REQUEST_FAILURE without a global request waiting for it")
            }
            promise?.succeed(nil)
        case .channelOpen(let open):
            receivedChannelOpen(open)
        case .channelOpenConfirmation(let recipient, let sender, let window, let maxPacket, _):
            let channel = try lookUp(recipient, "CHANNEL_OPEN_CONFIRMATION")
            guard case .openingOutbound(let promise) = channel.state else {
                throw SSHProtocolError("SSH_UNEXPECTED_OPEN_CONFIRMATION", "CHANNEL_OPEN_CONFIRMATION for channel \(recipient), which is not being opened")
            }
            channel.remoteID = sender
            channel.peerWindow = UInt64(window)
            channel.peerMaxPacket = Int(maxPacket)
            channel.state = .open
            promise.assumeIsolated().succeed(channel)
            outputReady()
        case .channelOpenFailure(let recipient, let reason, let description):
            let channel = try lookUp(recipient, "CHANNEL_OPEN_FAILURE")
            guard case .openingOutbound(let promise) = channel.state else {
                throw SSHProtocolError("SSH_UNEXPECTED_OPEN_FAILURE", "CHANNEL_OPEN_FAILURE for channel \(recipient), which is not being opened")
            }
            discardUnopened(channel)
            promise.fail(SSHChannelOpenError(reason: reason, message: description))
        case .channelWindowAdjust(let recipient, let bytes):
            let channel = try lookUpOpen(recipient, "CHANNEL_WINDOW_ADJUST")
            // RFC 4254 §5.2 caps the window at 2^32-1; a peer that overshoots is clamped, not dropped.
            channel.peerWindow = min(channel.peerWindow + UInt64(bytes), UInt64(UInt32.max))
            outputReady()
        case .channelData(let recipient, let data):
            try receivedChannelData(recipient, data: data, extendedType: nil)
        case .channelExtendedData(let recipient, let type, let data):
            try receivedChannelData(recipient, data: data, extendedType: type)
        case .channelEOF(let recipient):
            let channel = try lookUpOpen(recipient, "CHANNEL_EOF")
            guard !channel.eofReceived, !channel.closeSent else { return }
            channel.eofReceived = true
            channel.delegate?.sshChannelEOF(channel)
        case .channelClose(let recipient):
            let channel = try lookUpOpen(recipient, "CHANNEL_CLOSE")
            guard !channel.closeReceived else {
                throw SSHProtocolError("SSH_DUPLICATE_CHANNEL_CLOSE", "second CHANNEL_CLOSE for channel \(recipient)")
            }
            channel.closeReceived = true
            if !channel.closeSent {
                // Whatever is still queued can no longer be delivered.
                for item in channel.outbound.removeAll() { failItem(item, SSHChannelError.closed) }
                channel.closeQueued = true
                channel.closeSent = true
                send(SSHMessageWriter.channel(SSHMessageNumber.channelClose, recipient: channel.remoteID))
            }
            finishChannelIfClosed(channel)
        case .channelRequest(let recipient, let type, let wantReply, let data):
            let channel = try lookUpOpen(recipient, "CHANNEL_REQUEST")
            guard !channel.closeSent else { return }
            let id = channel.nextRequestID
            channel.nextRequestID += 1
            let request = SSHChannelRequest(type: type, wantReply: wantReply, payload: data, id: id)
            if wantReply {
                guard channel.inboundReplies.count < settings.maxPendingRequests else {
                    throw SSHProtocolError(
                        "SSH_TOO_MANY_PENDING_REQUESTS",
                        "more than \(settings.maxPendingRequests) unanswered requests on channel \(recipient)")
                }
                channel.inboundReplies.append(id: id)
                if ["shell", "exec", "subsystem"].contains(type) { channel.outputHeldFor = id }
            }
            if let channelDelegate = channel.delegate {
                channelDelegate.sshChannel(channel, request: request)
            } else {
                channel.reply(to: request, success: false)
            }
        case .channelSuccess(let recipient), .channelFailure(let recipient):
            let channel = try lookUpOpen(recipient, "CHANNEL_SUCCESS/FAILURE")
            guard let promise = channel.outstandingRequests.popFirst() else {
                throw SSHProtocolError("SSH_UNEXPECTED_CHANNEL_REPLY", "channel reply on channel \(recipient) without a request waiting for it")
            }
            if case .channelSuccess = message { promise?.succeed(true) } else { promise?.succeed(false) }
        default:
            break
        }
    }

    private func lookUp(_ id: UInt32, _ what: String) throws -> SSHChannel {
        guard let channel = channels[id] else {
            throw SSHProtocolError("SSH_UNKNOWN_CHANNEL", "\(what) for unknown channel \(id)")
        }
        return channel
    }

    /// A channel the peer knows by our id: confirmed either way.
    private func lookUpOpen(_ id: UInt32, _ what: String) throws -> SSHChannel {
        let channel = try lookUp(id, what)
        guard case .open = channel.state else {
            throw SSHProtocolError("SSH_UNKNOWN_CHANNEL", "\(what) for channel \(id), which is not open")
        }
        return channel
    }

    private func receivedChannelData(_ recipient: UInt32, data: ByteBuffer, extendedType: UInt32?) throws {
        let channel = try lookUpOpen(recipient, extendedType == nil ? "CHANNEL_DATA" : "CHANNEL_EXTENDED_DATA")
        guard data.readableBytes <= Int(settings.maxPacketSize) else {
            throw SSHProtocolError(
                "SSH_CHANNEL_PACKET_TOO_LARGE",
                "\(data.readableBytes) bytes of channel data in one packet, above the maximum \(settings.maxPacketSize)")
        }
        try channel.inboundWindow.receive(data.readableBytes)
        // Late data after EOF or our CLOSE is dropped; the window was charged so accounting stays exact.
        guard !channel.closeSent, !channel.eofReceived, data.readableBytes > 0 else {
            _ = channel.inboundWindow.consume(data.readableBytes)
            return
        }
        channel.delegate?.sshChannel(channel, received: data, extendedType: extendedType)
    }

    private func receivedChannelOpen(_ open: SSHChannelOpenMessage) {
        func refuse(_ reason: UInt32, _ message: String) {
            send(SSHMessageWriter.channelOpenFailure(recipient: open.senderChannel, reason: reason, description: message))
        }
        guard channels.count < settings.maxChannels else {
            refuse(SSHChannelOpenError.resourceShortage, "too many channels")
            return
        }
        if noMoreSessions, case .session = open.request {
            refuse(SSHChannelOpenError.administrativelyProhibited, "no more sessions")
            return
        }
        guard let context, let delegate = connectionDelegate else {
            refuse(SSHChannelOpenError.connectFailed, "shutting down")
            return
        }
        let channel = SSHChannel(
            localID: allocateChannelID(), type: open.type, state: .openingInbound,
            windowSize: settings.windowSize, highWaterMark: settings.channelHighWaterMark,
            eventLoop: context.eventLoop, handler: self)
        channel.remoteID = open.senderChannel
        channel.openPayload = open.typeSpecific
        channel.peerWindow = UInt64(open.initialWindow)
        channel.peerMaxPacket = Int(open.maxPacket)
        channels[channel.localID] = channel
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenComplete { result in
            guard !self.closing, self.channels[channel.localID] === channel, case .openingInbound = channel.state else { return }
            switch result {
            case .success:
                channel.state = .open
                self.send(
                    SSHMessageWriter.channelOpenConfirmation(
                        recipient: channel.remoteID, sender: channel.localID,
                        window: self.settings.windowSize, maxPacket: self.settings.maxPacketSize))
            case .failure(let error):
                self.discardUnopened(channel)
                let openError =
                    error as? SSHChannelOpenError
                    ?? SSHChannelOpenError(reason: SSHChannelOpenError.connectFailed, message: "\(error)")
                refuse(openError.reason, openError.message)
            }
            self.outputReady()
        }
        delegate.sshChannelOpen(open.request, channel: channel, promise: promise)
    }

    private func receivedGlobalRequest(type: String, wantReply: Bool, data: ByteBuffer) throws {
        let id = nextGlobalRequestID
        nextGlobalRequestID += 1
        if wantReply {
            guard globalReplies.count < settings.maxPendingRequests else {
                throw SSHProtocolError("SSH_TOO_MANY_PENDING_REQUESTS", "more than \(settings.maxPendingRequests) unanswered global requests")
            }
            globalReplies.append(id: id)
        }
        switch type {
        case "keepalive@openssh.com":
            // OpenSSH's clients probe with this and expect a failure.
            answerGlobalRequest(id: id, wantReply: wantReply, with: nil)
        case "no-more-sessions@openssh.com":
            noMoreSessions = true
            answerGlobalRequest(id: id, wantReply: wantReply, with: ByteBuffer())
        default:
            guard let delegate = connectionDelegate, let context else {
                answerGlobalRequest(id: id, wantReply: wantReply, with: nil)
                return
            }
            let promise = context.eventLoop.makePromise(of: ByteBuffer.self)
            promise.futureResult.assumeIsolated().whenComplete { result in
                guard !self.closing else { return }
                self.answerGlobalRequest(id: id, wantReply: wantReply, with: try? result.get())
                self.outputReady()
            }
            delegate.sshGlobalRequest(SSHGlobalRequest(type: type, wantReply: wantReply, payload: data), promise: promise)
        }
    }

    private func answerGlobalRequest(id: UInt64, wantReply: Bool, with answer: ByteBuffer?) {
        guard wantReply, globalReplies.answer(id: id, with: answer) else { return }
        while let ready = globalReplies.popReady() {
            if let data = ready.answer {
                send(SSHMessageWriter.requestSuccess(data: data))
            } else {
                send(SSHMessageWriter.requestFailure())
            }
        }
    }

    func allocateChannelID() -> UInt32 {
        // Ids are not reused soon, so a late message for an old channel cannot hit a new one.
        while channels[nextChannelID] != nil { nextChannelID &+= 1 }
        let id = nextChannelID
        nextChannelID &+= 1
        return id
    }

    func failItem(_ item: SSHChannelOutboundItem, _ error: any Error) {
        switch item {
        case .data(_, _, let promise): promise?.fail(error)
        case .request(_, _, _, let promise): promise?.fail(error)
        case .eof(let promise): promise?.fail(error)
        case .close(let promise): promise?.fail(error)
        }
    }

    /// A channel whose open was refused either way: it never was open, so its delegate hears
    /// nothing, but queued writes fail and close promises complete.
    func discardUnopened(_ channel: SSHChannel) {
        channels.removeValue(forKey: channel.localID)
        channel.state = .closed
        channel.delegate = nil
        for item in channel.outbound.removeAll() { failItem(item, SSHChannelError.closed) }
        let closePromises = channel.closePromises
        channel.closePromises = []
        for promise in closePromises { promise.succeed(()) }
    }

    func finishChannelIfClosed(_ channel: SSHChannel) {
        guard channel.closeSent, channel.closeReceived, !channel.isClosed else { return }
        channels.removeValue(forKey: channel.localID)
        finishChannel(channel, error: SSHChannelError.closed)
    }

    /// The channel is gone: promises complete, the delegate hears once, and references are dropped.
    func finishChannel(_ channel: SSHChannel, error: SSHChannelError) {
        let wasOpen: Bool
        switch channel.state {
        case .open:
            wasOpen = true
        case .openingOutbound(let promise):
            wasOpen = false
            promise.fail(error)
        case .openingInbound:
            wasOpen = false
        case .closed:
            return
        }
        channel.state = .closed
        for item in channel.outbound.removeAll() { failItem(item, error) }
        while let promise = channel.outstandingRequests.popFirst() { promise?.fail(error) }
        channel.inboundReplies.removeAll()
        channel.outputHeldFor = nil
        let closePromises = channel.closePromises
        channel.closePromises = []
        for promise in closePromises { promise.succeed(()) }
        let delegate = channel.delegate
        channel.delegate = nil
        if wasOpen { delegate?.sshChannelClosed(channel) }
    }

    // MARK: server-originated

    /// Opens a channel towards the peer (the server role's forwarded-tcpip, x11, auth-agent; the
    /// client role's session, direct-tcpip). `payload` is the type-specific part after the
    /// maximum packet size.
    public func openChannel(type: String, payload: ByteBuffer, delegate channelDelegate: any SSHChannelDelegate) -> EventLoopFuture<SSHChannel> {
        guard let context else {
            preconditionFailure("openChannel before the handler was added to a pipeline")
        }
        context.eventLoop.preconditionInEventLoop()
        guard !closing, isAuthenticated else {
            return context.eventLoop.makeFailedFuture(SSHChannelError.connectionClosed)
        }
        guard channels.count < settings.maxChannels else {
            return context.eventLoop.makeFailedFuture(SSHChannelOpenError(reason: SSHChannelOpenError.resourceShortage, message: "too many channels"))
        }
        let promise = context.eventLoop.makePromise(of: SSHChannel.self)
        let channel = SSHChannel(
            localID: allocateChannelID(), type: type, state: .openingOutbound(promise),
            windowSize: settings.windowSize, highWaterMark: settings.channelHighWaterMark,
            eventLoop: context.eventLoop, handler: self)
        channel.delegate = channelDelegate
        channels[channel.localID] = channel
        send(
            SSHMessageWriter.channelOpen(
                type: type, sender: channel.localID, window: settings.windowSize,
                maxPacket: settings.maxPacketSize, data: payload))
        outputReady()
        return promise.futureResult
    }

    /// A global request to the peer. With `wantReply` the future carries the reply data on
    /// REQUEST_SUCCESS and nil on REQUEST_FAILURE; without, it succeeds with nil once queued.
    public func sendGlobalRequest(type: String, wantReply: Bool, payload: ByteBuffer) -> EventLoopFuture<ByteBuffer?> {
        guard let context else {
            preconditionFailure("sendGlobalRequest before the handler was added to a pipeline")
        }
        context.eventLoop.preconditionInEventLoop()
        guard !closing, isAuthenticated else {
            return context.eventLoop.makeFailedFuture(SSHChannelError.connectionClosed)
        }
        send(SSHMessageWriter.globalRequest(type: type, wantReply: wantReply, data: payload))
        outputReady()
        guard wantReply else { return context.eventLoop.makeSucceededFuture(nil) }
        let promise = context.eventLoop.makePromise(of: ByteBuffer?.self)
        outstandingGlobalRequests.append(promise)
        return promise.futureResult
    }
}
