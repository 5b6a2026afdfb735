import BerthSSHCipher
import BerthSSHKeys
import BerthSSHWire
import NIOCore

/// The peer ended the connection with SSH_MSG_DISCONNECT (reason 11 is an ordinary logout).
public struct SSHPeerDisconnected: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: UInt32
    public var description: String
}

/// The server role's name for the engine; the front end and its tests use it.
public typealias SSHServerHandler = SSHConnectionEngine

/// One SSH connection (RFC 4253/4252/4254), one per TCP connection, on that connection's event
/// loop, in either role: the server (the front end) or the client (the SSH proxy's upstream
/// connection, SSHConnectionEngine+Client.swift). Transport, channels, windows and output
/// pumping are one implementation for both; only user authentication differs. Bytes in from the
/// socket, bytes out to it; everything else is told to the delegate and the channels' delegates.
///
/// Output is coalesced: packets accumulate in the transport's buffer and go to the socket once
/// per read burst (channelReadComplete) or once per event-loop tick when produced outside a read.
public final class SSHConnectionEngine: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = Never
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    let role: SSHRole
    /// The server role's settings; for the client role only the channel and rekey limits count.
    let settings: SSHServerSettings
    var delegate: (any SSHServerDelegate)?
    var clientDelegate: (any SSHClientDelegate)?
    var clientState: SSHClientAuthState?
    let transport: SSHTransport
    var context: ChannelHandlerContext?

    private var started = false
    private var inReadBurst = false
    private var flushScheduled = false
    private(set) var closing = false
    private var closeError: (any Error)?
    private var finished = false
    private var rekeyTimer: Scheduled<Void>?

    // User auth (RFC 4252). A keyboard-interactive conversation (RFC 4256) sits between
    // `authInFlight` and the delegate's answer: INFO_REQUEST out, INFO_RESPONSE in (`pendingInfo`),
    // as often as the delegate asks, and only then the result.
    var pendingInfo: (promise: EventLoopPromise<[String]>, count: Int)?
    var userauthServiceAccepted = false
    public internal(set) var isAuthenticated = false
    public internal(set) var authenticatedUsername: String?
    var authQueue = CircularBuffer<SSHUserAuthRequestMessage>()
    var authInFlight = false
    var authRequestCount = 0
    var bannerSent = false

    // Connection protocol (RFC 4254).
    var channels: [UInt32: SSHChannel] = [:]
    var nextChannelID: UInt32 = 0
    var noMoreSessions = false
    var globalReplies = SSHOrderedReplies<ByteBuffer?>()
    var nextGlobalRequestID: UInt64 = 0
    var outstandingGlobalRequests = CircularBuffer<EventLoopPromise<ByteBuffer?>?>()
    var scratch = ByteBuffer()

    /// Pumped output is handed to the socket in pieces of about this size.
    static let writeChunk = 256 * 1024
    /// Largest CHANNEL_DATA payload we send, whatever the peer allows.
    static let maxOutboundDataPacket = 32 * 1024

    public convenience init(settings: SSHServerSettings, delegate: any SSHServerDelegate) {
        self.init(settings: settings, delegate: delegate, crypto: SSHDefaultCryptoProvider())
    }

    init(settings: SSHServerSettings, delegate: any SSHServerDelegate, crypto: any SSHCryptoProvider) {
        role = .server
        self.settings = settings
        self.delegate = delegate
        let keys: [any SSHHostKeySigner] = settings.hostKeys + settings.hostCertificates.map { $0 as any SSHHostKeySigner }
        let signable = Set(keys.flatMap(\.signatureAlgorithms))
        let configuration = SSHTransportConfiguration(
            ourVersion: settings.serverVersion, kex: settings.kex, ciphers: settings.ciphers, macs: settings.macs,
            hostKeys: keys, hostKeyAlgorithms: settings.hostKeyAlgorithms.filter { signable.contains($0) },
            serverSignatureAlgorithms: settings.userAuthKeyAlgorithms, rekeyBytes: settings.rekeyBytes)
        transport = SSHTransport(role: .server, configuration: configuration, crypto: crypto)
        transport.delegate = self
    }

    /// The client role: logs in as `settings.username` once the first key exchange is done.
    public convenience init(clientSettings: SSHClientSettings, delegate: any SSHClientDelegate) {
        self.init(clientSettings: clientSettings, delegate: delegate, crypto: SSHDefaultCryptoProvider())
    }

    init(clientSettings: SSHClientSettings, delegate: any SSHClientDelegate, crypto: any SSHCryptoProvider) {
        role = .client
        settings = clientSettings.connectionSettings
        clientDelegate = delegate
        clientState = SSHClientAuthState(settings: clientSettings)
        let configuration = SSHTransportConfiguration(
            ourVersion: clientSettings.clientVersion, kex: clientSettings.kex, ciphers: clientSettings.ciphers,
            macs: clientSettings.macs, hostKeys: [], hostKeyAlgorithms: clientSettings.hostKeyAlgorithms,
            serverSignatureAlgorithms: [], rekeyBytes: clientSettings.rekeyBytes)
        transport = SSHTransport(role: .client, configuration: configuration, crypto: crypto)
        transport.delegate = self
    }

    /// Whoever hears about channels and global requests, in either role.
    var connectionDelegate: (any SSHConnectionDelegate)? { delegate ?? clientDelegate }

    /// The session identifier (H of the first key exchange), once there is one.
    public var sessionID: [UInt8]? { transport.sessionID }

    // MARK: NIO

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        scratch = context.channel.allocator.buffer(capacity: Self.maxOutboundDataPacket + 64)
        if context.channel.isActive { start() }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        finish()
        self.context = nil
    }

    public func channelActive(context: ChannelHandlerContext) {
        start()
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        var bytes = unwrapInboundIn(data)
        inReadBurst = true
        do {
            try transport.feed(&bytes)
        } catch {
            fail(error)
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        inReadBurst = false
        pumpAndFlush()
        context.fireChannelReadComplete()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { pumpAndFlush() }
        context.fireChannelWritabilityChanged()
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
    }

    /// Nothing above this handler writes raw bytes: the SSH stream is the engine's alone.
    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        promise?.fail(SSHProtocolError("SSH_RAW_WRITE", "raw writes through the SSH handler are not allowed"))
    }

    private func start() {
        guard !started, let context else { return }
        started = true
        do {
            try transport.start()
        } catch {
            fail(error)
            return
        }
        writeOutput(context: context, flush: true)
    }

    // MARK: output

    /// Something was queued outside a read burst: flush it on this event-loop tick.
    func outputReady() {
        guard !inReadBurst, !flushScheduled, let context else { return }
        flushScheduled = true
        context.eventLoop.assumeIsolated().execute {
            self.flushScheduled = false
            self.pumpAndFlush()
        }
    }

    func channelHasOutput() { outputReady() }

    func pumpAndFlush() {
        guard let context, !closing else { return }
        pumpChannels(context: context)
        writeOutput(context: context, flush: true)
    }

    private func writeOutput(context: ChannelHandlerContext, flush: Bool) {
        if transport.output.readableBytes > 0 {
            let out = transport.output
            transport.output = context.channel.allocator.buffer(capacity: 2048)
            context.write(wrapOutboundOut(out), promise: nil)
        }
        if flush { context.flush() }
    }

    /// Moves queued channel output into packets while the transport may send (no key exchange
    /// running) and the socket keeps up, round-robin over the channels so one busy channel
    /// cannot starve the others.
    private func pumpChannels(context: ChannelHandlerContext) {
        var completed: [EventLoopPromise<Void>] = []
        var touched: [SSHChannel] = []
        defer {
            for promise in completed { promise.succeed(()) }
            for channel in touched { channel.reportWritabilityIfChanged() }
        }
        // One allocation for a whole chunk of packets instead of doubling from a small buffer.
        let chunkCapacity = Self.writeChunk + 8 * (Self.maxOutboundDataPacket + 64)
        var progress = true
        while progress && transport.canSendNonKexMessages && context.channel.isWritable && !closing {
            progress = false
            for channel in channels.values where !channel.outbound.isEmpty && channel.outputHeldFor == nil {
                guard case .open = channel.state, !channel.closeSent else { continue }
                guard transport.canSendNonKexMessages else { break }
                if channel.peerWindow > 0, transport.output.writableBytes < 2 * Self.maxOutboundDataPacket {
                    transport.output.reserveCapacity(minimumWritableBytes: chunkCapacity)
                }
                if pump(channel, budget: 4 * Self.maxOutboundDataPacket, completed: &completed) {
                    progress = true
                    touched.append(channel)
                }
                if transport.output.readableBytes >= Self.writeChunk {
                    writeOutput(context: context, flush: false)
                    if !context.channel.isWritable { break }
                }
            }
        }
    }

    /// Sends what the peer's window allows from one channel's queue, up to `budget` data bytes.
    /// Returns true if anything was sent.
    private func pump(_ channel: SSHChannel, budget: Int, completed: inout [EventLoopPromise<Void>]) -> Bool {
        var sentAnything = false
        var budget = budget
        while transport.canSendNonKexMessages, !channel.closeSent, let item = channel.outbound.first {
            switch item {
            case .data:
                let limit = min(
                    Int(min(channel.peerWindow, UInt64(Int.max))), channel.peerMaxPacket,
                    Self.maxOutboundDataPacket, budget)
                guard limit > 0 else { return sentAnything }
                var finished: [EventLoopPromise<Void>] = []
                guard let (data, extendedType) = channel.outbound.takeData(limit: limit, completed: &finished) else { return sentAnything }
                if data.readableBytes > 0 {
                    SSHMessageWriter.channelData(recipient: channel.remoteID, extendedType: extendedType, data: data, into: &scratch)
                    guard send(scratch) else {
                        for promise in finished { promise.fail(SSHChannelError.closed) }
                        return sentAnything
                    }
                    channel.peerWindow -= UInt64(data.readableBytes)
                    budget -= data.readableBytes
                }
                completed.append(contentsOf: finished)
                sentAnything = true
            case .request(let type, let wantReply, let payload, let promise):
                _ = channel.outbound.removeFirst()
                guard send(SSHMessageWriter.channelRequest(recipient: channel.remoteID, type: type, wantReply: wantReply, data: payload)) else {
                    promise?.fail(SSHChannelError.closed)
                    return sentAnything
                }
                if wantReply {
                    channel.outstandingRequests.append(promise)
                } else {
                    promise?.succeed(true)
                }
                sentAnything = true
            case .eof(let promise):
                _ = channel.outbound.removeFirst()
                guard send(SSHMessageWriter.channel(SSHMessageNumber.channelEOF, recipient: channel.remoteID)) else {
                    promise?.fail(SSHChannelError.closed)
                    return sentAnything
                }
                if let promise { completed.append(promise) }
                sentAnything = true
            case .close:
                _ = channel.outbound.removeFirst()
                guard send(SSHMessageWriter.channel(SSHMessageNumber.channelClose, recipient: channel.remoteID)) else { return sentAnything }
                channel.closeSent = true
                sentAnything = true
                finishChannelIfClosed(channel)
            }
        }
        return sentAnything
    }

    /// Sends (or, during a key exchange, holds) a higher-layer message. False after a fatal error.
    @discardableResult
    func send(_ payload: ByteBuffer) -> Bool {
        guard !closing else { return false }
        do {
            try transport.send(payload)
            return true
        } catch {
            fail(error)
            return false
        }
    }

    func sendChannelMessage(_ payload: ByteBuffer, for channel: SSHChannel) {
        send(payload)
        outputReady()
    }

    // MARK: ending

    /// Sends DISCONNECT and closes the connection.
    public func disconnect(reason: UInt32, description: String) {
        guard !closing else { return }
        closing = true
        transport.sendDisconnect(reason: reason, description: description)
        closeConnection()
    }

    /// Ends the connection because of `error`, telling the peer why when it is a protocol error.
    func fail(_ error: any Error) {
        guard !closing else { return }
        closing = true
        closeError = error
        if let protocolError = error as? SSHProtocolError {
            transport.sendDisconnect(reason: protocolError.disconnectReason, description: protocolError.message)
        }
        closeConnection()
    }

    private func closeConnection() {
        guard let context else {
            finish()
            return
        }
        writeOutput(context: context, flush: true)
        context.close(promise: nil)
    }

    /// Tears down everything once: channels are closed towards their delegates, waiting promises
    /// fail, and the delegate hears about the end.
    private func finish() {
        guard !finished else { return }
        finished = true
        closing = true
        rekeyTimer?.cancel()
        rekeyTimer = nil
        let open = channels.values.sorted { $0.localID < $1.localID }
        channels.removeAll()
        for channel in open { finishChannel(channel, error: SSHChannelError.connectionClosed) }
        while let promise = outstandingGlobalRequests.popFirst() { promise?.fail(SSHChannelError.connectionClosed) }
        authQueue.removeAll()
        abortInfoRequest("the connection closed")
        let delegate = connectionDelegate
        self.delegate = nil
        clientDelegate = nil
        delegate?.sshConnectionClosed(error: closeError)
    }

    /// Starts a key exchange now (ignored while one runs or before the first is done).
    public func requestKeyExchange() {
        guard !closing else { return }
        do {
            try transport.requestKeyExchange()
        } catch {
            fail(error)
        }
        outputReady()
    }

    // MARK: rekey timer

    private func scheduleRekeyTimer() {
        rekeyTimer?.cancel()
        guard let context, settings.rekeyInterval.nanoseconds > 0 else { return }
        rekeyTimer = context.eventLoop.assumeIsolated().scheduleTask(in: settings.rekeyInterval) {
            self.rekeyTimer = nil
            guard !self.closing else { return }
            do {
                try self.transport.requestKeyExchange()
            } catch {
                self.fail(error)
            }
            self.outputReady()
        }
    }
}

extension SSHServerHandler: SSHTransportDelegate {
    func transportReceivedPeerVersion(_ version: String) {
        delegate?.sshClientVersion(version)
        clientDelegate?.sshServerVersion(version)
    }

    func transportVerifyHostKey(_ key: SSHPublicKey, algorithm: String) throws {
        try clientDelegate?.sshVerifyHostKey(key, algorithm: algorithm)
    }

    func transportReceived(_ message: SSHMessage, sequenceNumber: UInt32) throws {
        if role == .client {
            try clientReceived(message, sequenceNumber: sequenceNumber)
            return
        }
        switch message {
        case .serviceRequest(let service):
            guard service == "ssh-userauth" else {
                throw SSHProtocolError(
                    "SSH_SERVICE_NOT_AVAILABLE", "service \"\(service)\" is not available",
                    disconnectReason: SSHDisconnectReason.serviceNotAvailable)
            }
            // Repeated requests are answered again: paramiko sends two.
            userauthServiceAccepted = true
            send(SSHMessageWriter.serviceAccept(service))
        case .extInfo, .serviceAccept:
            // We announce no ext-info-s, so a client's EXT_INFO carries nothing we use.
            break
        case .userauthRequest(let request):
            try receivedUserAuthRequest(request)
        case .userauthInfoResponse(let responses):
            try receivedInfoResponse(responses)
        case .unknown(let number), .userauthReply(let number, _):
            if (50...79).contains(number) && isAuthenticated { break }
            try transport.sendUnimplemented(sequenceNumber: sequenceNumber)
        default:
            guard isAuthenticated else {
                throw SSHProtocolError("SSH_NOT_AUTHENTICATED", "connection protocol message before user authentication")
            }
            try receivedConnectionMessage(message)
        }
    }

    func transportPeerDisconnected(reason: UInt32, description: String) {
        guard !closing else { return }
        closing = true
        closeError = SSHPeerDisconnected(reason: reason, description: description)
        closeConnection()
    }

    func transportOutboundResumed() {
        outputReady()
    }

    func transportKeyExchangeCompleted(initial: Bool) {
        if initial && role == .client { clientStartAuthentication() }
        scheduleRekeyTimer()
        outputReady()
    }
}
