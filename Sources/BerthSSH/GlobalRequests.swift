import BerthCore
import BerthSSHEngine
import BerthSSHWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Global requests of an authenticated connection: `tcpip-forward` and `cancel-tcpip-forward`
/// go to the layer stack once the connection's environment is ready; everything else is
/// refused (the engine itself answers `keepalive@openssh.com` and `no-more-sessions@openssh.com`).
enum GlobalRequests {
    static func serve(
        _ request: SSHGlobalRequest, connection: SSHConnection, engine: NIOLoopBound<WeakEngine>,
        promise: EventLoopPromise<ByteBuffer>
    ) {
        var data = request.payload
        switch request.type {
        case "tcpip-forward", "cancel-tcpip-forward":
            guard let host = data.readSSHText(), let port = data.readSSHUInt32() else {
                connection.logger.log(.info, "SSH_REQUEST_MALFORMED", "refused a \(request.type) request whose data does not parse")
                promise.fail(RequestRefused("SSH_REQUEST_MALFORMED", "malformed \(request.type)"))
                return
            }
            // OpenSSH servers answer global requests before they look at later messages, so a
            // client may connect to the forwarded port right after asking; channels opened after
            // a forwarding request wait until it is answered.
            connection.trackGlobalRequest(promise.futureResult.map { _ in })
            let forward = ReverseForward(host: host, port: port)
            let opener = EngineForwardedChannelOpener(engine: engine, connection: connection)
            let listen = request.type == "tcpip-forward"
            promise.completeWithTask {
                let layers = try await connection.sshHandler.futureResult.get()
                do {
                    var reply = ByteBuffer()
                    if listen {
                        let bound = try await layers.onReverseForward(forward, opener: opener)
                        connection.logger.log(.debug, "SSH_REVERSE_FORWARD", "listening for the client", ["forward": "\(host):\(bound)"])
                        // RFC 4254 §7.1: the allocated port is returned only when the client asked for port 0.
                        if port == 0 { reply.writeSSHUInt32(bound) }
                    } else {
                        try await layers.onCancelReverseForward(forward)
                    }
                    return reply
                } catch {
                    connection.logger.log(.info, "SSH_FORWARD_REFUSED", "forwarding request refused: \(error)")
                    throw error
                }
            }
        case "streamlocal-forward@openssh.com", "cancel-streamlocal-forward@openssh.com":
            guard let path = data.readSSHText() else {
                connection.logger.log(.info, "SSH_REQUEST_MALFORMED", "refused a \(request.type) request whose data does not parse")
                promise.fail(RequestRefused("SSH_REQUEST_MALFORMED", "malformed \(request.type)"))
                return
            }
            connection.trackGlobalRequest(promise.futureResult.map { _ in })
            let opener = EngineForwardedChannelOpener(engine: engine, connection: connection)
            let listen = request.type == "streamlocal-forward@openssh.com"
            promise.completeWithTask {
                let layers = try await connection.sshHandler.futureResult.get()
                do {
                    if listen {
                        try await layers.onStreamLocalForward(path: path, opener: opener)
                        connection.logger.log(.debug, "SSH_REVERSE_FORWARD", "listening for the client", ["forward": "\(path)"])
                    } else {
                        try await layers.onCancelStreamLocalForward(path: path)
                    }
                    return ByteBuffer()
                } catch {
                    connection.logger.log(.info, "SSH_FORWARD_REFUSED", "forwarding request refused: \(error)")
                    throw error
                }
            }
        default:
            connection.logger.log(.debug, "SSH_UNSUPPORTED_GLOBAL_REQUEST", "refused global request \(request.type)")
            reportUnsupported(request.type, connection: connection)
            promise.fail(RequestRefused("SSH_UNSUPPORTED_GLOBAL_REQUEST", "unsupported global request \(request.type)"))
        }
    }

    private static func reportUnsupported(_ type: String, connection: SSHConnection) {
        connection.sshHandler.futureResult.whenSuccess { handler in
            Task { await handler.onUnsupportedGlobalRequest(type: type) }
        }
    }
}

/// Opens channels towards the client for connections accepted in the container: `forwarded-tcpip`
/// and `forwarded-streamlocal@openssh.com` for reverse forwards, `x11` and `auth-agent@openssh.com`
/// for a session's forwards.
struct EngineForwardedChannelOpener: ForwardedChannelOpener, ClientChannelOpener {
    let engine: NIOLoopBound<WeakEngine>
    let connection: SSHConnection

    func openForwardedChannel(_ forward: ReverseForward, originatorHost: String, originatorPort: UInt32) async throws -> any ForwardChannel {
        var request = ByteBuffer()
        request.writeSSHText(forward.host)
        request.writeSSHUInt32(forward.port)
        request.writeSSHText(originatorHost)
        request.writeSSHUInt32(originatorPort)
        return try await open("forwarded-tcpip", request)
    }

    /// PROTOCOL (OpenSSH) 2.4: the socket path and a reserved string.
    func openForwardedStreamLocal(path: String) async throws -> any ForwardChannel {
        var request = ByteBuffer()
        request.writeSSHText(path)
        request.writeSSHText("")
        return try await open("forwarded-streamlocal@openssh.com", request)
    }

    /// RFC 4254 §6.3.2.
    func openX11(originatorHost: String, originatorPort: UInt32) async throws -> any ForwardChannel {
        var request = ByteBuffer()
        request.writeSSHText(originatorHost)
        request.writeSSHUInt32(originatorPort)
        return try await open("x11", request)
    }

    /// PROTOCOL.agent (OpenSSH): no channel-specific data.
    func openAgent() async throws -> any ForwardChannel {
        try await open("auth-agent@openssh.com", ByteBuffer())
    }

    private func open(_ type: String, _ payload: ByteBuffer) async throws -> any ForwardChannel {
        let eventLoop = engine.eventLoop
        let channelID = connection.allocateChannelID()
        let opened = eventLoop.flatSubmit { [engine] () -> EventLoopFuture<EngineForwardChannel> in
            guard let handler = engine.value.handler else {
                return eventLoop.makeFailedFuture(SSHChannelError.connectionClosed)
            }
            let end = NIOLoopBound(ForwardEnd(eventLoop: eventLoop), eventLoop: eventLoop)
            return handler.openChannel(type: type, payload: payload, delegate: end.value.bridge).map { channel in
                end.value.forwardChannel(on: NIOLoopBound(channel, eventLoop: eventLoop), channelID: channelID)
            }.flatMapErrorThrowing { error in
                end.value.bridge.finish()
                throw error
            }
        }
        return try await opened.get()
    }
}
