import BerthCore
import BerthSSHEngine
import BerthSSHKeys
import BerthSSHWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The engine's delegate for one upstream connection, on its event loop: pins the host key,
/// reports the login, and takes the channels the upstream opens towards us (forwarded-tcpip
/// and forwarded-streamlocal for the user's reverse forwards, x11 and auth-agent for sessions
/// that asked for them), each relayed to a channel the client opens.
final class UpstreamConnection: SSHClientDelegate, @unchecked Sendable {
    private let allowedFingerprints: Set<String>
    private let target: String
    private let logger: Logger
    let loggedIn: EventLoopPromise<Void>
    /// Reverse forwards by bound port, for the upstream's forwarded-tcpip opens.
    let reverseForwards = NIOLockedValueBox<[UInt32: (forward: ReverseForward, opener: any ForwardedChannelOpener)]>([:])
    /// Socket forwards by path; the X11 and agent openers of the sessions that asked (the client
    /// takes x11 and auth-agent channels per connection, so the latest session's opener serves).
    let clientOpeners = NIOLockedValueBox<(sockets: [String: any ClientChannelOpener], x11: (any ClientChannelOpener)?, agent: (any ClientChannelOpener)?)>(
        ([:], nil, nil))
    private(set) var closeError: (any Error)?

    init(allowedFingerprints: [String], target: String, logger: Logger, loggedIn: EventLoopPromise<Void>) {
        self.allowedFingerprints = Set(allowedFingerprints)
        self.target = target
        self.logger = logger
        self.loggedIn = loggedIn
    }

    func sshServerVersion(_ version: String) {
        logger.log(.debug, "SSHPROXY_CONNECTED", "upstream identifies as \(version)", ["upstream": "\(target)"])
    }

    func sshVerifyHostKey(_ key: SSHPublicKey, algorithm: String) throws {
        let fingerprint = key.fingerprintSHA256
        guard allowedFingerprints.contains(fingerprint) else {
            logger.log(.error, "SSHPROXY_HOST_KEY_REJECTED", "upstream \(target) presented host key \(fingerprint), which is not allowed")
            throw SSHProtocolError(
                "SSHPROXY_HOST_KEY_REJECTED", "upstream host key \(fingerprint) is not in sshproxy.allowedHostKeyFingerprints",
                disconnectReason: SSHDisconnectReason.hostKeyNotVerifiable)
        }
    }

    func sshAuthenticated() {
        loggedIn.succeed(())
    }

    func sshChannelOpen(_ request: SSHChannelOpenRequest, channel: SSHChannel, promise: EventLoopPromise<Void>) {
        var payload = channel.openPayload
        let openers = clientOpeners.withLockedValue { $0 }
        switch channel.type {
        case "forwarded-tcpip":
            guard payload.readSSHText() != nil, let port = payload.readSSHUInt32(), let originator = payload.readSSHText(),
                let originatorPort = payload.readSSHUInt32()
            else { return refuse(promise, SSHChannelOpenError.connectFailed, "malformed forwarded-tcpip open") }
            guard let registered = reverseForwards.withLockedValue({ $0[port] }) else {
                return refuse(promise, SSHChannelOpenError.connectFailed, "no forward for port \(port)")
            }
            relay(channel, promise) { try await registered.opener.openForwardedChannel(registered.forward, originatorHost: originator, originatorPort: originatorPort) }
        case "forwarded-streamlocal@openssh.com":
            guard let path = payload.readSSHText() else { return refuse(promise, SSHChannelOpenError.connectFailed, "malformed forwarded-streamlocal open") }
            guard let opener = openers.sockets[path] else { return refuse(promise, SSHChannelOpenError.connectFailed, "no forward for socket \(path)") }
            relay(channel, promise) { try await opener.openForwardedStreamLocal(path: path) }
        case "x11":
            guard let originator = payload.readSSHText(), let originatorPort = payload.readSSHUInt32() else {
                return refuse(promise, SSHChannelOpenError.connectFailed, "malformed x11 open")
            }
            guard let opener = openers.x11 else { return refuse(promise, SSHChannelOpenError.administrativelyProhibited, "no session asked for X11 forwarding") }
            relay(channel, promise) { try await opener.openX11(originatorHost: originator, originatorPort: originatorPort) }
        case "auth-agent@openssh.com":
            guard let opener = openers.agent else { return refuse(promise, SSHChannelOpenError.administrativelyProhibited, "no session asked for agent forwarding") }
            relay(channel, promise) { try await opener.openAgent() }
        default:
            refuse(promise, SSHChannelOpenError.administrativelyProhibited, "\(channel.type) channels are not relayed")
        }
    }

    private func refuse(_ promise: EventLoopPromise<Void>, _ reason: UInt32, _ message: String) {
        promise.fail(SSHChannelOpenError(reason: reason, message: message))
    }

    /// Accepts the upstream's channel once the client accepted its own, then bridges the two.
    private func relay(_ channel: SSHChannel, _ promise: EventLoopPromise<Void>, open: @escaping @Sendable () async throws -> any ForwardChannel) {
        let upstream = UpstreamChannel(eventLoop: channel.eventLoop)
        upstream.attach(channel)
        let loop = channel.eventLoop
        let type = channel.type
        Task {
            do {
                let downstream = try await open()
                loop.execute { promise.succeed(()) }
                ForwardBridge.run(downstream: downstream, upstream: upstream)
            } catch {
                loop.execute {
                    promise.fail(SSHChannelOpenError(reason: SSHChannelOpenError.connectFailed, message: "the client refused the \(type) channel"))
                }
            }
        }
    }

    func sshGlobalRequest(_ request: SSHGlobalRequest, promise: EventLoopPromise<ByteBuffer>) {
        // hostkeys-00@openssh.com and the like: nothing the proxy acts on.
        promise.fail(SSHChannelOpenError(reason: 0, message: "not supported"))
    }

    func sshConnectionClosed(error: (any Error)?) {
        closeError = error
        loggedIn.fail(error ?? BerthError("SSHPROXY_UPSTREAM_CLOSED", "the upstream server closed the connection"))
    }
}
