import BerthConfig
import BerthCore
import BerthSSH
import BerthSSHEngine
import BerthSSHWire
import Logging
import NIOCore
import NIOPosix

/// The SSH proxy backend (docs/configuration.md, "sshproxy"): each user connection gets an SSH
/// client connection to the configured server, on the client role of Berth's own engine, and
/// their sessions and forwards are relayed over it.
public struct SSHProxyBackend: Sendable {
    let config: SSHProxyConfig

    public init(config: SSHProxyConfig) { self.config = config }

    /// Used when `sshproxy.clientVersion` is empty.
    public static let defaultClientVersion = "SSH-2.0-Berth"

    /// With `usernamePassThrough`, the identity the authenticator proved, not the name the
    /// client typed: `ssh root@berth` that the auth webhook accepted as bob logs in upstream as
    /// bob, never as root.
    static func upstreamUsername(_ config: SSHProxyConfig, _ metadata: ConnectionMetadata) -> String {
        config.usernamePassThrough ? metadata.effectiveUsername : config.username
    }

    static func clientSettings(_ config: SSHProxyConfig, username: String) throws -> SSHClientSettings {
        var settings = SSHClientSettings(username: username)
        settings.clientVersion = config.clientVersion.isEmpty ? defaultClientVersion : config.clientVersion
        settings.password = config.password.isEmpty ? nil : config.password
        settings.privateKey = try config.privateKey.isEmpty ? nil : ProxyClientKey.load(config.privateKey)
        settings.ciphers = config.ciphers
        settings.kex = config.kex
        settings.macs = config.macs
        settings.hostKeyAlgorithms = config.hostKeyAlgorithms
        return settings
    }

    public func connect(_ metadata: ConnectionMetadata, logger: Logger) async throws -> SSHProxyConnection {
        let settings = try Self.clientSettings(config, username: Self.upstreamUsername(config, metadata))
        // The client's connection's loop, so relayed bytes stay on one thread (UpstreamChannel).
        let eventLoop = ConnectionContext.eventLoop ?? MultiThreadedEventLoopGroup.singleton.any()
        let target = "\(config.server):\(config.port)"
        let upstream = UpstreamConnection(
            allowedFingerprints: config.allowedHostKeyFingerprints, target: target, logger: logger,
            loggedIn: eventLoop.makePromise(of: Void.self))
        let bootstrap = ClientBootstrap(group: eventLoop)
            .connectTimeout(.nanoseconds(config.timeout.nanoseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(SSHConnectionEngine(clientSettings: settings, delegate: upstream))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: config.server, port: config.port).get()
        } catch {
            upstream.loggedIn.fail(error)
            throw BerthError("SSHPROXY_UPSTREAM_UNREACHABLE", "cannot reach the upstream SSH server \(target): \(error)")
        }
        do {
            let limit = config.timeout
            try await withDeadline(limit.duration, BerthError("SSHPROXY_TIMEOUT", "the upstream did not complete the login within \(limit)")) {
                try await upstream.loggedIn.futureResult.get()
            }
        } catch {
            try? await channel.close()
            let reason: String
            switch error {
            case let coded as CodedError: reason = coded.message
            case let engine as SSHProtocolError: reason = engine.description
            default: reason = "\(error)"
            }
            if let engine = error as? SSHProtocolError, engine.code == "SSH_CLIENT_AUTH_REJECTED" {
                logger.log(.error, "SSHPROXY_AUTH_REJECTED", "upstream \(target): \(engine.message)")
            }
            throw BerthError("SSHPROXY_LOGIN_FAILED", "could not log in to the upstream SSH server \(target): \(reason)")
        }
        let engine = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: SSHConnectionEngine.self), eventLoop: channel.eventLoop)
        }.get()
        logger.log(.debug, "SSHPROXY_CONNECTED", "connected to the upstream SSH server", ["upstream": "\(target)"])
        return SSHProxyConnection(channel: channel, engine: engine, upstream: upstream)
    }
}

/// One user's relay connection.
public final class SSHProxyConnection: SSHConnectionHandler {
    private let channel: Channel
    private let engine: NIOLoopBound<SSHConnectionEngine>
    private let upstream: UpstreamConnection

    init(channel: Channel, engine: NIOLoopBound<SSHConnectionEngine>, upstream: UpstreamConnection) {
        self.channel = channel
        self.engine = engine
        self.upstream = upstream
    }

    /// Opens a channel of any type upstream; `payload` is its type-specific data.
    func openUpstream(type: String, payload: ByteBuffer) async throws -> UpstreamChannel {
        let eventLoop = channel.eventLoop
        let relay = UpstreamChannel(eventLoop: eventLoop)
        let engine = self.engine
        let opened = eventLoop.flatSubmit {
            engine.value.openChannel(type: type, payload: payload, delegate: relay).map { channel in
                relay.attach(channel)
            }
        }
        do {
            try await opened.get()
        } catch let error as SSHChannelOpenError {
            throw ChannelRejection(ChannelRejection.Reason(rawValue: error.reason) ?? .connectFailed, "the upstream server refused the \(type) channel: \(error.message)")
        } catch {
            throw ChannelRejection(.connectFailed, "the upstream server refused the \(type) channel: \(error)")
        }
        return relay
    }

    public func onSessionChannel(_ downstream: any SessionChannel) async throws -> any SessionChannelHandler {
        let upstream = try await openUpstream(type: "session", payload: ByteBuffer())
        return ProxySession(downstream: downstream, upstream: upstream, connection: self.upstream)
    }

    public func onDirectForward(_ request: DirectForward, channel downstream: any ForwardChannel) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(request.host)
        payload.writeSSHUInt32(request.port)
        payload.writeSSHText(request.originatorHost)
        payload.writeSSHUInt32(request.originatorPort)
        let upstream = try await openUpstream(type: "direct-tcpip", payload: payload)
        ForwardBridge.run(downstream: downstream, upstream: upstream)
    }

    public func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        var payload = ByteBuffer()
        payload.writeSSHText(forward.host)
        payload.writeSSHUInt32(forward.port)
        guard var reply = try await globalRequest("tcpip-forward", payload: payload) else {
            throw RequestRefused("SSHPROXY_REQUEST_REFUSED", "the upstream server refused to listen on \(forward)")
        }
        // RFC 4254 §7.1: the bound port comes back only when port 0 was asked for.
        let port = forward.port == 0 ? (reply.readSSHUInt32() ?? 0) : forward.port
        let bound = ReverseForward(host: forward.host, port: port)
        upstream.reverseForwards.withLockedValue { $0[port] = (bound, opener) }
        return port
    }

    public func onCancelReverseForward(_ forward: ReverseForward) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(forward.host)
        payload.writeSSHUInt32(forward.port)
        upstream.reverseForwards.withLockedValue { _ = $0.removeValue(forKey: forward.port) }
        guard try await globalRequest("cancel-tcpip-forward", payload: payload) != nil else {
            throw RequestRefused("SSHPROXY_REQUEST_REFUSED", "the upstream server refused to stop listening on \(forward)")
        }
    }

    public func onDirectStreamLocal(path: String, channel downstream: any ForwardChannel) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(path)
        // Reserved fields of OpenSSH's PROTOCOL, section 2.4.
        payload.writeSSHText("")
        payload.writeSSHUInt32(0)
        let upstream = try await openUpstream(type: "direct-streamlocal@openssh.com", payload: payload)
        ForwardBridge.run(downstream: downstream, upstream: upstream)
    }

    public func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(path)
        guard try await globalRequest("streamlocal-forward@openssh.com", payload: payload) != nil else {
            throw RequestRefused("SSHPROXY_REQUEST_REFUSED", "the upstream server refused to listen on the socket \(path)")
        }
        upstream.clientOpeners.withLockedValue { $0.sockets[path] = opener }
    }

    public func onCancelStreamLocalForward(path: String) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(path)
        upstream.clientOpeners.withLockedValue { _ = $0.sockets.removeValue(forKey: path) }
        guard try await globalRequest("cancel-streamlocal-forward@openssh.com", payload: payload) != nil else {
            throw RequestRefused("SSHPROXY_REQUEST_REFUSED", "the upstream server refused to stop listening on the socket \(path)")
        }
    }

    private func globalRequest(_ type: String, payload: ByteBuffer) async throws -> ByteBuffer? {
        let engine = self.engine
        return try await channel.eventLoop.flatSubmit {
            engine.value.sendGlobalRequest(type: type, wantReply: true, payload: payload)
        }.get()
    }

    public func onUnsupportedChannel(type: String) async {}
    public func onUnsupportedGlobalRequest(type: String) async {}

    public func tearDown() async {
        try? await channel.close()
    }
}
