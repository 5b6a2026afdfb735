import BerthConfig
import BerthCore
import Logging
import Synchronization

/// The authentication layer of the handler stack: answers password and public key attempts
/// with the configured method, runs the authz webhook after any success, and passes
/// everything else to the next layer.
public final class AuthServerLayer: ServerHandler {
    private let next: any ServerHandler
    private let password: any PasswordAuthenticator
    private let publicKey: any PublicKeyAuthenticator
    private let certificates: CertificateAuthenticator
    private let secondFactor: SecondFactorGate?
    private let securityKeys: SecurityKeyCounters
    private let oauth2: (any OAuth2SignIn)?
    /// Webhooks see no key options, so a FIDO key must always have been touched.
    private let touchAlwaysRequired: Bool
    private let authz: AuthWebhookClient?
    private let webhooks: [AuthWebhookClient]
    private let logger: Logger

    /// `stateDirectory` keeps spent TOTP steps and FIDO counters across restarts (nil: memory only).
    public init(config: AuthConfig, stateDirectory: String?, next: any ServerHandler, logger: Logger) throws {
        self.next = next
        self.logger = logger
        let store = AuthStateStore(directory: stateDirectory, logger: logger)
        securityKeys = SecurityKeyCounters(store: store)
        var webhooks: [AuthWebhookClient] = []
        func webhook(_ config: WebhookConfig) throws -> AuthWebhookClient {
            let client = try AuthWebhookClient(config: config, logger: logger)
            webhooks.append(client)
            return client
        }
        switch config.password.method {
        case .disabled: password = DisabledAuthenticator()
        case .webhook: password = try webhook(config.password.webhook)
        case .static: password = try StaticUsersAuthenticator(config: config.password.static)
        }
        switch config.publicKey.method {
        case .disabled: publicKey = DisabledAuthenticator()
        case .webhook: publicKey = try webhook(config.publicKey.webhook)
        case .static: publicKey = try StaticUsersAuthenticator(config: config.publicKey.static, logger: logger)
        case .authorizedKeys: publicKey = AuthorizedKeysAuthenticator(pathTemplate: config.publicKey.authorizedKeys.pathTemplate, logger: logger)
        }
        certificates = try CertificateAuthenticator(config: config.publicKey)
        touchAlwaysRequired = config.publicKey.method == .webhook
        oauth2 = config.keyboardInteractive.method == .oauth2 ? try OAuth2SignInFactory.make(config.keyboardInteractive.oauth2, logger: logger) : nil
        secondFactor =
            config.secondFactor.method == .totp
            ? SecondFactorGate(config: config.secondFactor, users: try config.password.static.allUsers() + config.publicKey.static.allUsers(), store: store)
            : nil
        authz = config.authz.method == .webhook ? try webhook(config.authz.webhook) : nil
        self.webhooks = webhooks
    }

    public func onReady() async throws { try await next.onReady() }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        AuthConnectionLayer(
            next: try await next.onNetworkConnection(metadata),
            password: password, publicKey: publicKey, certificates: certificates, secondFactor: secondFactor,
            securityKeys: securityKeys, touchAlwaysRequired: touchAlwaysRequired, oauth2: oauth2, authz: authz,
            logger: logger.forConnection(metadata)
        )
    }

    public func onShutdown(deadline: ContinuousClock.Instant) async { await next.onShutdown(deadline: deadline) }

    /// Releases the webhook clients once no connection needs them any more.
    public func close() async {
        for client in webhooks { await client.shutdown() }
        await oauth2?.shutdown()
    }
}

struct AuthConnectionLayer: NetworkConnectionHandler {
    let next: any NetworkConnectionHandler
    let password: any PasswordAuthenticator
    let publicKey: any PublicKeyAuthenticator
    let certificates: CertificateAuthenticator
    let secondFactor: SecondFactorGate?
    let securityKeys: SecurityKeyCounters
    let touchAlwaysRequired: Bool
    let oauth2: (any OAuth2SignIn)?
    let authz: AuthWebhookClient?
    let logger: Logger
    /// After a first factor that needs a code: what it proved, and the secret to check against.
    let pending = PendingSecondFactor()

    func onAuthPassword(_ metadata: ConnectionMetadata, password secret: [UInt8]) async -> AuthOutcome {
        await finish(await password.authenticate(metadata, password: secret), method: "password", metadata: metadata)
    }

    func onAuthPublicKey(_ metadata: ConnectionMetadata, publicKey key: String) async -> AuthOutcome {
        // Certificates are checked here against Berth's CAs, whatever the method: a webhook or
        // a key list would only see an unknown key type.
        if CertificateAuthenticator.isCertificate(key) {
            let outcome = certificates.authenticate(metadata, certificate: key, authorities: publicKey.keyLines(metadata), logger: logger)
            return await finish(outcome, method: "publickey-certificate", metadata: metadata)
        }
        var outcome = await publicKey.authenticate(metadata, publicKey: key)
        if case .success = outcome, let assertion = metadata.securityKey {
            if touchAlwaysRequired, !assertion.userPresent {
                outcome = .failure(reason: "the security key was not touched (user presence flag missing)")
            } else if !securityKeys.accept(key, counter: assertion.counter) {
                outcome = .failure(reason: "the security key's counter \(assertion.counter) did not increase: a cloned key or a replayed signature")
            }
        }
        return await finish(outcome, method: "publickey", metadata: metadata)
    }

    func onAuthKeyboardInteractive(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        guard let oauth2 else {
            return await finish(.unavailable(reason: "keyboard-interactive sign-in is not configured"), method: "keyboard-interactive", metadata: metadata)
        }
        return await finish(await oauth2.login(metadata, conversation: conversation), method: "keyboard-interactive", metadata: metadata)
    }

    func onAuthSecondFactor(_ metadata: ConnectionMetadata, code: String) async -> AuthOutcome {
        guard let secondFactor, let waiting = pending.value.withLock({ $0 }) else {
            return await finish(.failure(reason: "no second factor was asked for"), method: "totp", metadata: metadata, firstFactor: false)
        }
        let user = waiting.metadata.effectiveUsername
        guard secondFactor.verify(code, secret: waiting.secret, user: user) else {
            return await finish(.failure(reason: "wrong, expired or already used verification code"), method: "totp", metadata: metadata, firstFactor: false)
        }
        pending.value.withLock { $0 = nil }
        var proven = waiting.metadata
        proven.secondFactorPending = false
        return await finish(.success(proven), method: "totp", metadata: metadata, firstFactor: false)
    }

    private func finish(_ outcome: AuthOutcome, method: String, metadata: ConnectionMetadata, firstFactor: Bool = true) async -> AuthOutcome {
        var outcome = outcome
        if firstFactor, case .success(let authenticated) = outcome, let secondFactor {
            switch secondFactor.decide(authenticated) {
            case .done(let cleaned): outcome = .success(cleaned)
            case .refuse(let reason): outcome = .failure(reason: reason)
            case .ask(let cleaned, let secret):
                pending.value.withLock { $0 = (cleaned, secret) }
                var waiting = cleaned
                waiting.secondFactorPending = true
                logger.log(
                    .info, "AUTH_SECOND_FACTOR_REQUIRED", "first factor accepted; asking for the verification code",
                    [LogKey.username: "\(metadata.username)", "method": "\(method)"])
                return .success(waiting)
            }
        }
        if case .success(let authenticated) = outcome, let authz {
            outcome = await authz.authorize(authenticated)
            if case .failure = outcome { outcome = .failure(reason: "the authorization webhook denied the login") }
        }
        let details: Logger.Metadata = [LogKey.username: "\(metadata.username)", "method": "\(method)"]
        switch outcome {
        case .success(let authenticated):
            var withIdentity = details
            withIdentity["authenticatedUsername"] = "\(authenticated.effectiveUsername)"
            logger.log(.info, "AUTH_SUCCESSFUL", "user authenticated", withIdentity)
        case .failure(let reason):
            var withReason = details
            withReason[LogKey.reason] = "\(reason)"
            logger.log(.info, "AUTH_FAILED", "authentication failed", withReason)
        case .unavailable(let reason):
            var withReason = details
            withReason[LogKey.reason] = "\(reason)"
            logger.log(.info, "AUTH_UNAVAILABLE", "authentication could not be checked", withReason)
        }
        return outcome
    }

    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async {
        await next.onHandshakeFailed(metadata, reason: reason)
    }

    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        try await next.onHandshakeSuccess(metadata)
    }

    func onDisconnect() async { await next.onDisconnect() }
}

/// One connection's first factor waiting for its code (a class: the layer is a value type).
final class PendingSecondFactor: Sendable {
    let value = Mutex<(metadata: ConnectionMetadata, secret: [UInt8])?>(nil)
}
