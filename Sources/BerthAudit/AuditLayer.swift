import BerthConfig
import BerthCore
import Logging

/// The audit layer (docs/configuration.md, "audit"), between metrics and authentication: records every event of a
/// connection into its audit log, and wraps channels to capture the bytes `intercept` asks for.
public struct AuditServerLayer: ServerHandler {
    private let next: any ServerHandler
    private let config: AuditConfig
    private let storage: any AuditStorage
    private let logger: Logger

    /// Nil when auditing is off, so the layer costs nothing then.
    public static func make(next: any ServerHandler, config: AuditConfig, logger: Logger) throws -> (any ServerHandler, AuditService?) {
        guard config.isActive else { return (next, nil) }
        let service = try AuditService(config: config, logger: logger)
        return (AuditServerLayer(next: next, config: config, storage: service.storage, logger: logger), service)
    }

    init(next: any ServerHandler, config: AuditConfig, storage: any AuditStorage, logger: Logger) {
        self.next = next
        self.config = config
        self.storage = storage
        self.logger = logger
    }

    public func onReady() async throws { try await next.onReady() }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        let recorder = AuditRecorder(
            connectionID: metadata.connectionID.hex, format: config.format, intercept: config.intercept, storage: storage,
            info: AuditObjectInfo(ip: metadata.remoteAddress.ip, username: ""), logger: logger.forConnection(metadata))
        recorder.record(.connect, AuditPayload().text("remoteAddr", metadata.remoteAddress.ip).text("country", "XX"))
        AuditRecorder.open.withLockedValue { $0[recorder.connectionID] = recorder }
        do {
            return AuditConnectionLayer(next: try await next.onNetworkConnection(metadata), recorder: recorder)
        } catch {
            recorder.record(.disconnect)
            await recorder.close()
            throw error
        }
    }

    public func onShutdown(deadline: ContinuousClock.Instant) async { await next.onShutdown(deadline: deadline) }
}

struct AuditConnectionLayer: NetworkConnectionHandler {
    let next: any NetworkConnectionHandler
    let recorder: AuditRecorder

    func onAuthPassword(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        let recorded = recorder.intercept.passwords ? password : []
        let base = AuditPayload().text("username", metadata.username).bytes("password", recorded)
        recorder.record(.authPassword, base)
        let outcome = await next.onAuthPassword(metadata, password: password)
        switch outcome {
        case .success: recorder.record(.authPasswordSuccessful, base)
        case .failure: recorder.record(.authPasswordFailed, base)
        case .unavailable(let reason): recorder.record(.authPasswordBackendError, base.text("reason", reason))
        }
        return outcome
    }

    func onAuthPublicKey(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        let base = AuditPayload().text("username", metadata.username).text("key", publicKey)
        recorder.record(.authPubKey, base)
        let outcome = await next.onAuthPublicKey(metadata, publicKey: publicKey)
        switch outcome {
        case .success: recorder.record(.authPubKeySuccessful, base)
        case .failure: recorder.record(.authPubKeyFailed, base)
        case .unavailable(let reason): recorder.record(.authPubKeyBackendError, base.text("reason", reason))
        }
        return outcome
    }

    /// The second factor is a keyboard-interactive question the front end asks; it is recorded
    /// as one (108–110), the code only when passwords are recorded.
    func onAuthSecondFactor(_ metadata: ConnectionMetadata, code: String) async -> AuthOutcome {
        let question = AuditPayload().text("question", "Verification code: ")
        let username = AuditPayload().text("username", metadata.username)
        recorder.record(.authKeyboardInteractiveChallenge, username.text("instruction", "").maps("questions", [question.bool("echo", false)]))
        recorder.record(.authKeyboardInteractiveAnswer, username.maps("answers", [question.text("answer", recorder.intercept.passwords ? code : "")]))
        let outcome = await next.onAuthSecondFactor(metadata, code: code)
        recordKeyboardInteractive(outcome, username: metadata.username)
        return outcome
    }

    func onAuthKeyboardInteractive(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        let audited = AuditedConversation(inner: conversation, recorder: recorder, username: metadata.username)
        let outcome = await next.onAuthKeyboardInteractive(metadata, conversation: audited)
        recordKeyboardInteractive(outcome, username: metadata.username)
        return outcome
    }

    /// ContainerSSH has no "keyboard-interactive successful": the handshake record follows.
    private func recordKeyboardInteractive(_ outcome: AuthOutcome, username: String) {
        switch outcome {
        case .success: break
        case .failure: recorder.record(.authKeyboardInteractiveFailed, AuditPayload().text("username", username))
        case .unavailable(let reason): recorder.record(.authKeyboardInteractiveBackendError, AuditPayload().text("username", username).text("reason", reason))
        }
    }

    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async {
        recorder.record(.handshakeFailed, AuditPayload().text("reason", reason))
        await next.onHandshakeFailed(metadata, reason: reason)
    }

    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        // From here on the user is who the authenticator said; the typed name stays in the
        // authentication records above.
        recorder.record(.handshakeSuccessful, AuditPayload().text("username", metadata.effectiveUsername))
        recorder.setUsername(metadata.effectiveUsername)
        return AuditSSHConnectionLayer(next: try await next.onHandshakeSuccess(metadata), recorder: recorder)
    }

    func onDisconnect() async {
        await next.onDisconnect()
        recorder.record(.disconnect)
        await recorder.close()
    }
}

/// Records each keyboard-interactive round (108 challenge, 109 answers). Answers can be
/// passwords or pasted codes: they are kept only when `audit.intercept.passwords` is on.
struct AuditedConversation: KeyboardInteractiveConversation {
    let inner: any KeyboardInteractiveConversation
    let recorder: AuditRecorder
    let username: String

    func ask(name: String, instruction: String, prompts: [(prompt: String, echo: Bool)]) async throws -> [String] {
        let user = AuditPayload().text("username", username)
        let questions = prompts.map { AuditPayload().text("question", $0.prompt).bool("echo", $0.echo) }
        recorder.record(.authKeyboardInteractiveChallenge, user.text("instruction", instruction).maps("questions", questions))
        let answers = try await inner.ask(name: name, instruction: instruction, prompts: prompts)
        let recorded = zip(prompts, answers).map { prompt, answer in
            AuditPayload().text("question", prompt.prompt).text("answer", recorder.intercept.passwords ? answer : "")
        }
        recorder.record(.authKeyboardInteractiveAnswer, user.maps("answers", recorded))
        return answers
    }
}
