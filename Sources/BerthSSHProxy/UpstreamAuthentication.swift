import BerthCore
import Crypto
import Foundation
import NIOCore
import NIOSSH

/// Accepts the upstream only if its host key's SHA256 fingerprint is in the allowed list.
final class FingerprintVerifier: NIOSSHClientServerAuthenticationDelegate {
    private let allowed: Set<String>
    private let onRejected: @Sendable (String) -> Void

    init(allowed: [String], onRejected: @escaping @Sendable (String) -> Void) {
        self.allowed = Set(allowed)
        self.onRejected = onRejected
    }

    /// `SHA256:` + unpadded base64 of the SHA-256 of the key blob, as `ssh-keygen -l` prints it.
    static func fingerprint(_ key: NIOSSHPublicKey) -> String {
        let line = String(openSSHPublicKey: key)
        let blob = Data(base64Encoded: String(line.split(separator: " ").dropFirst().first ?? "")) ?? Data()
        let digest = Data(SHA256.hash(data: blob)).base64EncodedString()
        return "SHA256:" + digest.replacingOccurrences(of: "=", with: "")
    }

    func validateHostKey(hostKey: NIOSSHPublicKey, validationCompletePromise: EventLoopPromise<Void>) {
        let fingerprint = Self.fingerprint(hostKey)
        if allowed.contains(fingerprint) {
            validationCompletePromise.succeed()
        } else {
            onRejected(fingerprint)
            validationCompletePromise.fail(BerthError("SSHPROXY_HOST_KEY_REJECTED", "upstream host key \(fingerprint) is not in sshproxy.allowedHostKeyFingerprints"))
        }
    }
}

/// Offers the configured private key, then the password, once each.
final class UpstreamCredentials: NIOSSHClientUserAuthenticationDelegate {
    private let username: String
    private var offers: [NIOSSHUserAuthenticationOffer.Offer]

    init(username: String, password: String, privateKey: NIOSSHPrivateKey?) {
        self.username = username
        var offers: [NIOSSHUserAuthenticationOffer.Offer] = []
        if let privateKey { offers.append(.privateKey(.init(privateKey: privateKey))) }
        if !password.isEmpty { offers.append(.password(.init(password: password))) }
        self.offers = offers
    }

    func nextAuthenticationType(availableMethods: NIOSSHAvailableUserAuthenticationMethods, nextChallengePromise: EventLoopPromise<NIOSSHUserAuthenticationOffer?>) {
        while let offer = offers.first {
            offers.removeFirst()
            switch offer {
            case .privateKey where availableMethods.contains(.publicKey),
                .password where availableMethods.contains(.password):
                nextChallengePromise.succeed(NIOSSHUserAuthenticationOffer(username: username, serviceName: "", offer: offer))
                return
            default:
                continue
            }
        }
        nextChallengePromise.fail(BerthError("SSHPROXY_AUTH_REJECTED", "the upstream server rejected the configured credentials for \(username)"))
    }
}

/// Completes when the upstream accepted the login, or fails with why it did not.
final class UpstreamLoginWatcher: ChannelInboundHandler {
    typealias InboundIn = Any
    private let promise: EventLoopPromise<Void>
    private var failure: Error?

    init(promise: EventLoopPromise<Void>) { self.promise = promise }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is UserAuthSuccessEvent { promise.succeed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        failure = failure ?? error
        promise.fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(failure ?? BerthError("SSHPROXY_UPSTREAM_CLOSED", "the upstream server closed the connection"))
        context.fireChannelInactive()
    }
}
