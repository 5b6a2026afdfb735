import BerthCore
import BerthSSHEngine
import BerthSSHKeys
import BerthSSHWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The engine's delegate for one upstream connection, on its event loop: pins the host key,
/// reports the login, and takes the channels the upstream opens towards us (forwarded-tcpip
/// for the user's reverse forwards).
final class UpstreamConnection: SSHClientDelegate, @unchecked Sendable {
    private let allowedFingerprints: Set<String>
    private let target: String
    private let logger: Logger
    let loggedIn: EventLoopPromise<Void>
    /// Reverse forwards by bound port, for the upstream's forwarded-tcpip opens.
    let reverseForwards = NIOLockedValueBox<[UInt32: (forward: ReverseForward, opener: any ForwardedChannelOpener)]>([:])
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
        guard channel.type == "forwarded-tcpip" else {
            // x11, auth-agent and forwarded-streamlocal need the front end's matching openers.
            promise.fail(SSHChannelOpenError(reason: SSHChannelOpenError.administrativelyProhibited, message: "\(channel.type) channels are not relayed"))
            return
        }
        var payload = channel.openPayload
        guard payload.readSSHText() != nil, let port = payload.readSSHUInt32(), let originator = payload.readSSHText(),
            let originatorPort = payload.readSSHUInt32()
        else {
            promise.fail(SSHChannelOpenError(reason: SSHChannelOpenError.connectFailed, message: "malformed forwarded-tcpip open"))
            return
        }
        guard let registered = reverseForwards.withLockedValue({ $0[port] }) else {
            promise.fail(SSHChannelOpenError(reason: SSHChannelOpenError.connectFailed, message: "no forward for port \(port)"))
            return
        }
        let upstream = UpstreamChannel(eventLoop: channel.eventLoop)
        upstream.attach(channel)
        let loop = channel.eventLoop
        Task {
            do {
                let downstream = try await registered.opener.openForwardedChannel(registered.forward, originatorHost: originator, originatorPort: originatorPort)
                loop.execute { promise.succeed(()) }
                ForwardBridge.run(downstream: downstream, upstream: upstream)
            } catch {
                loop.execute {
                    promise.fail(SSHChannelOpenError(reason: SSHChannelOpenError.connectFailed, message: "the client refused the forwarded connection"))
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
