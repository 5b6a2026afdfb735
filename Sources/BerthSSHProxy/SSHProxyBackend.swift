import BerthConfig
import BerthCore
import BerthSSH
import Logging
import NIOCore
import NIOPosix
import NIOSSH

/// The SSH proxy backend (docs/configuration.md, "sshproxy"): each user connection gets an SSH client connection to the
/// configured server, and their sessions are relayed over it.
public struct SSHProxyBackend: Sendable {
    let config: SSHProxyConfig

    public init(config: SSHProxyConfig) { self.config = config }

    /// With `usernamePassThrough`, the identity the authenticator proved, not the name the
    /// client typed: `ssh root@berth` that the auth webhook accepted as bob logs in upstream as
    /// bob, never as root.
    static func upstreamUsername(_ config: SSHProxyConfig, _ metadata: ConnectionMetadata) -> String {
        config.usernamePassThrough ? metadata.effectiveUsername : config.username
    }

    public func connect(_ metadata: ConnectionMetadata, logger: Logger) async throws -> SSHProxyConnection {
        let username = Self.upstreamUsername(config, metadata)
        let privateKey = try config.privateKey.isEmpty ? nil : ProxyClientKey.load(config.privateKey)
        let loggedIn = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: Void.self)
        let allowed = config.allowedHostKeyFingerprints
        let target = "\(config.server):\(config.port)"
        let bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.nanoseconds(config.timeout.nanoseconds))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let verifier = FingerprintVerifier(allowed: allowed) { fingerprint in
                        logger.log(.error, "SSHPROXY_HOST_KEY_REJECTED", "upstream \(target) presented host key \(fingerprint), which is not allowed")
                    }
                    let credentials = UpstreamCredentials(username: username, password: config.password, privateKey: privateKey)
                    let client = SSHClientConfiguration(userAuthDelegate: credentials, serverAuthDelegate: verifier)
                    try channel.pipeline.syncOperations.addHandler(NIOSSHHandler(role: .client(client), allocator: channel.allocator, inboundChildChannelInitializer: nil))
                    try channel.pipeline.syncOperations.addHandler(UpstreamLoginWatcher(promise: loggedIn))
                }
            }
        let channel: Channel
        do {
            channel = try await bootstrap.connect(host: config.server, port: config.port).get()
        } catch {
            loggedIn.fail(error)
            throw BerthError("SSHPROXY_UPSTREAM_UNREACHABLE", "cannot reach the upstream SSH server \(target): \(error)")
        }
        do {
            let limit = config.timeout
            try await withDeadline(limit.duration, BerthError("SSHPROXY_TIMEOUT", "the upstream did not complete the login within \(limit)")) {
                try await loggedIn.futureResult.get()
            }
        } catch {
            try? await channel.close()
            let reason = (error as? CodedError)?.message ?? "\(error)"
            throw BerthError("SSHPROXY_LOGIN_FAILED", "could not log in to the upstream SSH server \(target): \(reason)")
        }
        let handler = try await channel.eventLoop.submit {
            NIOLoopBound(try channel.pipeline.syncOperations.handler(type: NIOSSHHandler.self), eventLoop: channel.eventLoop)
        }.get()
        logger.log(.debug, "SSHPROXY_CONNECTED", "connected to the upstream SSH server", ["upstream": "\(target)"])
        return SSHProxyConnection(channel: channel, handler: handler, logger: logger)
    }
}

/// One user's relay connection.
public final class SSHProxyConnection: SSHConnectionHandler {
    private let channel: Channel
    private let handler: NIOLoopBound<NIOSSHHandler>
    private let logger: Logger

    init(channel: Channel, handler: NIOLoopBound<NIOSSHHandler>, logger: Logger) {
        self.channel = channel
        self.handler = handler
        self.logger = logger
    }

    public func onSessionChannel(_ downstream: any SessionChannel) async throws -> any SessionChannelHandler {
        let eventLoop = channel.eventLoop
        let opened = eventLoop.makePromise(of: Channel.self)
        let (relay, events) = try await eventLoop.submit { () -> (NIOLoopBound<UpstreamRelay>, UpstreamRelay.Events) in
            let (relay, events) = UpstreamRelay.make(eventLoop: eventLoop)
            let bound = NIOLoopBound(relay, eventLoop: eventLoop)
            self.handler.value.createChannel(opened, channelType: .session) { child, _ in
                child.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    try child.pipeline.syncOperations.addHandler(bound.value)
                }
            }
            return (bound, events)
        }.get()
        let upstream: Channel
        do {
            upstream = try await opened.futureResult.get()
        } catch {
            throw ChannelRejection(.connectFailed, "the upstream server refused a session: \(error)")
        }
        return ProxySession(downstream: downstream, upstream: upstream, relay: relay, events: events)
    }

    public func onUnsupportedChannel(type: String) async {}
    public func onUnsupportedGlobalRequest(type: String) async {}

    public func tearDown() async {
        try? await channel.close()
    }
}
