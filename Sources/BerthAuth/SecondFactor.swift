import BerthConfig
import BerthCore
import Foundation
import Synchronization

/// `auth.secondFactor`: whose login needs a TOTP code after the first factor, and checking it.
/// One per server, so a code accepted on one connection is refused on every other (RFC 6238
/// §5.2: a verifier must not accept the same OTP twice). docs/security.md, "Second factor".
final class SecondFactorGate: Sendable {
    let config: SecondFactorConfig
    private let staticSecrets: [String: [UInt8]]
    /// Keeps the last time step accepted per user; a code of that step or an earlier one is a replay.
    private let store: AuthStateStore

    init(config: SecondFactorConfig, users: [StaticUser], store: AuthStateStore) {
        self.config = config
        self.store = store
        var secrets: [String: [UInt8]] = [:]
        for user in users where !user.totpSecret.isEmpty {
            if let secret = Base32.decode(user.totpSecret) { secrets[user.username] = secret }
        }
        staticSecrets = secrets
    }

    enum Decision {
        /// No second factor for this user.
        case done(ConnectionMetadata)
        case ask(ConnectionMetadata, secret: [UInt8])
        case refuse(String)
    }

    /// After a first factor: the webhook's metadata entry wins over the static list. The entry is
    /// taken out of the metadata, so no later webhook or container sees the secret.
    func decide(_ metadata: ConnectionMetadata) -> Decision {
        var metadata = metadata
        var secret = staticSecrets[metadata.username]
        if let entry = metadata.metadata.removeValue(forKey: config.metadataKey) {
            guard let decoded = Base32.decode(entry.value), decoded.count >= 10 else {
                return .refuse("the auth webhook's \(config.metadataKey) is not a base32 secret of at least 10 bytes")
            }
            secret = decoded
        }
        if let secret { return .ask(metadata, secret: secret) }
        return config.required ? .refuse("no second factor is enrolled for this user (auth.secondFactor.required)") : .done(metadata)
    }

    private func totp(_ secret: [UInt8]) -> TOTP {
        TOTP(secret: secret, digits: config.digits, period: max(1, config.period.nanoseconds / 1_000_000_000), algorithm: config.algorithm)
    }

    /// True once per valid code: the step must be later than the last one this user used.
    func verify(_ answer: String, secret: [UInt8], user: String, now: Date = Date()) -> Bool {
        guard let step = totp(secret).matchingStep(answer, at: Int64(now.timeIntervalSince1970), skew: config.skew) else { return false }
        return store.update { state in
            if let last = state.totpSteps[user], step <= last { return false }
            state.totpSteps[user] = step
            return true
        }
    }
}
