import BerthCore
import BerthSSHEngine
import BerthSSHWire
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// The engine's delegate for one connection: hands authentication attempts, channel opens and
/// global requests to the layer stack (through `SSHConnection`) and answers the engine with the
/// result. Runs on the connection's event loop.
final class ConnectionDelegate: SSHServerDelegate {
    private let connection: SSHConnection
    /// Set right after the engine handler is made; the handler owns this delegate, so the
    /// reference back is weak.
    weak var engine: SSHServerHandler?
    /// A first factor that succeeded while the auth layer wants a verification code: only
    /// keyboard-interactive is offered until the code is right (RFC 4252 §5.1 partial success).
    private let pendingSecondFactor = NIOLockedValueBox<ConnectionMetadata?>(nil)

    init(connection: SSHConnection) {
        self.connection = connection
    }

    private var eventLoop: any EventLoop { connection.channel.eventLoop }

    func sshClientVersion(_ version: String) {
        connection.setClientVersion(version)
    }

    /// keyboard-interactive is offered as a password prompt when a password method is
    /// configured (`auth.keyboardInteractive.passwordPrompt`); otherwise clients that try it
    /// anyway get a failure and move on to the methods listed here.
    var sshAuthMethods: [String] {
        if pendingSecondFactor.withLockedValue({ $0 != nil }) { return ["keyboard-interactive"] }
        let settings = connection.settings
        return settings.keyboardInteractivePassword || settings.keyboardInteractiveSignIn
            ? ["publickey", "password", "keyboard-interactive"] : ["publickey", "password"]
    }

    // MARK: authentication

    func sshAuthenticate(_ request: SSHAuthRequest, promise: EventLoopPromise<SSHAuthResult>) {
        let connection = self.connection
        let pendingSecondFactor = self.pendingSecondFactor
        let engine = NIOLoopBound(WeakEngine(engine), eventLoop: eventLoop)
        promise.completeWithTask {
            // The connection is being closed; answer without consulting any authenticator.
            if connection.isExhausted { return .failure(partialSuccess: false) }
            let metadata = connection.metadata(username: request.username)
            let outcome: AuthOutcome
            /// Both password paths: login protection first, then the password method.
            func checkPassword(_ password: String) async throws -> AuthOutcome {
                if let refusal = connection.loginGuard?.refusesPassword(for: request.username, from: connection.remoteAddress.ip, logger: connection.logger) {
                    if refusal == .address { Self.disconnect(engine, "too many failed logins from your address") }
                    return .failure(reason: "too many recent failed passwords")
                }
                let handler = try await connection.networkHandler.futureResult.get()
                let outcome = await handler.onAuthPassword(metadata, password: Array(password.utf8))
                if case .failure = outcome, let loginGuard = connection.loginGuard {
                    let (delay, addressBlocked) = loginGuard.passwordFailed(username: request.username, ip: connection.remoteAddress.ip, logger: connection.logger)
                    if addressBlocked { Self.disconnect(engine, "too many failed logins from your address") }
                    // The client waits for its answer; a guesser gets fewer tries per minute.
                    if delay > .zero, !addressBlocked { try? await Task.sleep(for: delay) }
                }
                return outcome
            }
            switch request.method {
            case .none:
                // Not credentials: not counted against maxAuthTries (as in OpenSSH).
                return .failure(partialSuccess: false)
            case .keyboardInteractive(_, let conversation) where pendingSecondFactor.withLockedValue({ $0?.username == request.username }):
                let answers: [String]
                do {
                    answers = try await conversation.ask(prompts: [SSHKeyboardInteractivePrompt("Verification code: ", echo: false)])
                } catch {
                    return .failure(partialSuccess: false)
                }
                guard let firstFactor = pendingSecondFactor.withLockedValue({ $0 }) else { return .failure(partialSuccess: false) }
                let handler = try await connection.networkHandler.futureResult.get()
                outcome = await handler.onAuthSecondFactor(firstFactor, code: answers[0])
            case .keyboardInteractive(_, let conversation) where connection.settings.keyboardInteractiveSignIn:
                let handler = try await connection.networkHandler.futureResult.get()
                outcome = await handler.onAuthKeyboardInteractive(metadata, conversation: EngineConversation(conversation: conversation))
            case .keyboardInteractive(_, let conversation):
                guard connection.settings.keyboardInteractivePassword else { return .failure(partialSuccess: false) }
                let answers: [String]
                do {
                    answers = try await conversation.ask(prompts: [SSHKeyboardInteractivePrompt("Password: ", echo: false)])
                } catch {
                    // The client gave up on the prompt: no credential was tried.
                    return .failure(partialSuccess: false)
                }
                outcome = try await checkPassword(answers[0])
            case .password(let password):
                outcome = try await checkPassword(password)
            case .publicKey(let key):
                let handler = try await connection.networkHandler.futureResult.get()
                outcome = await handler.onAuthPublicKey(metadata, publicKey: key.authorizedKeysText)
            case .certificate(let certificate):
                let handler = try await connection.networkHandler.futureResult.get()
                outcome = await handler.onAuthPublicKey(metadata, publicKey: certificate.authorizedKeysText)
            case .securityKey(let key, let assertion):
                let handler = try await connection.networkHandler.futureResult.get()
                var asserted = metadata
                asserted.securityKey = SecurityKeyAssertion(userPresent: assertion.userPresent, userVerified: assertion.userVerified, counter: assertion.counter)
                outcome = await handler.onAuthPublicKey(asserted, publicKey: key.authorizedKeysText)
            }
            if case .success(let authenticated) = outcome, authenticated.secondFactorPending {
                pendingSecondFactor.withLockedValue { $0 = authenticated }
                return .failure(partialSuccess: true)
            }
            if case .success(let authenticated) = outcome {
                pendingSecondFactor.withLockedValue { $0 = nil }
                switch request.method {
                case .password, .keyboardInteractive: connection.loginGuard?.succeeded(username: request.username)
                default: break
                }
                connection.authenticated(authenticated) { description in
                    engine.eventLoop.execute {
                        if let handler = engine.value.handler {
                            handler.disconnect(reason: SSHDisconnectReason.byApplication, description: description)
                        } else {
                            connection.channel.close(promise: nil)
                        }
                    }
                }
                return .success
            }
            // While a code is awaited, the method list (keyboard-interactive only) tells the client to go on.
            if connection.recordFailure() {
                connection.logger.log(.notice, "SSH_MAX_AUTH_TRIES", "too many failed authentication attempts; closing the connection", [LogKey.username: "\(request.username)"])
                Self.disconnect(engine, "too many authentication failures")
            }
            return .failure(partialSuccess: false)
        }
    }

    /// The failure reply is queued first; DISCONNECT follows it.
    private static func disconnect(_ engine: NIOLoopBound<WeakEngine>, _ description: String) {
        engine.eventLoop.execute {
            engine.value.handler?.disconnect(reason: SSHDisconnectReason.noMoreAuthMethodsAvailable, description: description)
        }
    }

    // MARK: channels

    func sshChannelOpen(_ request: SSHChannelOpenRequest, channel: SSHChannel, promise: EventLoopPromise<Void>) {
        let bound = NIOLoopBound(channel, eventLoop: eventLoop)
        let opened: EventLoopFuture<Void>
        switch request {
        case .session:
            let ready = connection.sshHandler.futureResult.and(connection.globalRequestsSettled())
            let opener = EngineForwardedChannelOpener(engine: NIOLoopBound(WeakEngine(engine), eventLoop: eventLoop), connection: connection)
            opened = ready.flatMap { [connection] handler, _ in
                ChannelOpening.session(bound, handler: handler, connection: connection, opener: opener)
            }
        case .directTCPIP(let host, let port, let originatorHost, let originatorPort):
            let forward = DirectForward(host: host, port: port, originatorHost: originatorHost, originatorPort: originatorPort)
            opened = connection.sshHandler.futureResult.flatMap { [connection] handler in
                ChannelOpening.direct(bound, forward: forward, handler: handler, connection: connection)
            }
        case .directStreamLocal(let path):
            opened = connection.sshHandler.futureResult.flatMap { [connection] handler in
                ChannelOpening.directStreamLocal(bound, path: path, handler: handler, connection: connection)
            }
        case .other(let type):
            connection.logger.log(.info, "SSH_UNSUPPORTED_CHANNEL_TYPE", "unsupported channel type \(type)")
            opened = refuseUnsupported(type, .unknownChannelType, "unsupported channel type \(type)")
        }
        opened.flatMapErrorThrowing { error in
            throw Self.openError(error)
        }.cascade(to: promise)
    }

    private func refuseUnsupported(_ type: String, _ reason: ChannelRejection.Reason, _ message: String) -> EventLoopFuture<Void> {
        connection.sshHandler.futureResult.whenSuccess { handler in
            Task { await handler.onUnsupportedChannel(type: type) }
        }
        return eventLoop.makeFailedFuture(ChannelRejection(reason, message))
    }

    private static func openError(_ error: any Error) -> SSHChannelOpenError {
        if let rejection = error as? ChannelRejection {
            return SSHChannelOpenError(reason: rejection.reason.rawValue, message: rejection.message)
        }
        if let coded = error as? CodedError {
            return SSHChannelOpenError(reason: SSHChannelOpenError.connectFailed, message: coded.message)
        }
        return SSHChannelOpenError(reason: SSHChannelOpenError.connectFailed, message: "the channel could not be opened")
    }

    // MARK: global requests

    func sshGlobalRequest(_ request: SSHGlobalRequest, promise: EventLoopPromise<ByteBuffer>) {
        GlobalRequests.serve(request, connection: connection, engine: NIOLoopBound(WeakEngine(engine), eventLoop: eventLoop), promise: promise)
    }

    func sshConnectionClosed(error: (any Error)?) {
        guard let error else { return }
        if let peer = error as? SSHPeerDisconnected {
            connection.logger.log(.debug, "SSH_CLIENT_DISCONNECTED", "client sent DISCONNECT: \(peer.description)")
        } else if let protocolError = error as? SSHProtocolError {
            // The engine's own code says exactly what went wrong (docs/message-codes.md).
            connection.logger.log(.info, MessageCode(protocolError.code), "connection ended by a protocol error: \(protocolError.message)")
        } else {
            connection.logger.log(.info, "SSH_PROTOCOL_ERROR", "connection error: \(error)")
        }
    }
}

/// The engine handler, held weakly so the handler → delegate → handler cycle does not leak.
struct WeakEngine {
    weak var handler: SSHServerHandler?
    init(_ handler: SSHServerHandler?) { self.handler = handler }
}

/// The engine's keyboard-interactive exchange as the layers see it.
struct EngineConversation: KeyboardInteractiveConversation {
    let conversation: SSHKeyboardInteractiveConversation

    func ask(name: String, instruction: String, prompts: [(prompt: String, echo: Bool)]) async throws -> [String] {
        try await conversation.ask(name: name, instruction: instruction, prompts: prompts.map { SSHKeyboardInteractivePrompt($0.prompt, echo: $0.echo) })
    }
}
