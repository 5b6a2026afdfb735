import BerthCore
import Logging
import NIOCore
import NIOSSH

/// Hands each authentication attempt to the layer stack. The SSH library has already checked
/// public key signatures; keys of algorithms it does not know (RSA) never get here and simply
/// fail, so clients move on to their next method.
final class UserAuthBridge: NIOSSHServerUserAuthenticationDelegate {
    private let connection: SSHConnection

    init(connection: SSHConnection) {
        self.connection = connection
    }

    var supportedAuthenticationMethods: NIOSSHAvailableUserAuthenticationMethods { [.password, .publicKey] }

    func requestReceived(request: NIOSSHUserAuthenticationRequest, responsePromise: EventLoopPromise<NIOSSHUserAuthenticationOutcome>) {
        let connection = self.connection
        responsePromise.completeWithTask {
            // The connection is being closed; answer without consulting any authenticator.
            if connection.isExhausted { return .failure }
            let handler = try await connection.networkHandler.futureResult.get()
            let metadata = connection.metadata(username: request.username)
            let outcome: AuthOutcome
            switch request.request {
            case .password(let password):
                outcome = await handler.onAuthPassword(metadata, password: Array(password.password.utf8))
            case .publicKey(let key):
                outcome = await handler.onAuthPublicKey(metadata, publicKey: String(openSSHPublicKey: key.publicKey))
            default:
                return .failure
            }
            if case .success(let authenticated) = outcome {
                connection.authenticated(authenticated)
                return .success
            }
            if connection.recordFailure() {
                connection.logger.log(.notice, "SSH_MAX_AUTH_TRIES", "too many failed authentication attempts; closing the connection", [LogKey.username: "\(request.username)"])
                // Let the failure reply go out first.
                connection.channel.eventLoop.scheduleTask(in: .milliseconds(50)) { connection.channel.close(promise: nil) }
            }
            return .failure
        }
    }
}
