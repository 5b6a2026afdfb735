import BerthConfig
import BerthCore
import Logging
import NIOConcurrencyHelpers

/// `LoginProtection` shared by every connection of the listener, with its logs and metrics.
final class LoginGuard: Sendable {
    private let protection: NIOLockedValueBox<LoginProtection>

    init(config: LoginProtectionConfig) {
        self.protection = NIOLockedValueBox(LoginProtection(config: config))
    }

    /// Nil when a new connection from `ip` may go on; otherwise it must be closed before key
    /// exchange, and the number says how many were closed in this block (this one included).
    func refusesConnection(from ip: String) -> Int? {
        let refusals = protection.withLockedValue { protection -> Int? in
            guard protection.isBlocked(address: ip, now: .now) else { return nil }
            return protection.noteRefusal(address: ip)
        }
        if refusals != nil { BerthMetrics.loginRefused(kind: "address") }
        return refusals
    }

    /// Why a password for `username` from `ip` must be refused without asking anyone: the
    /// username is blocked, or the address was blocked while this connection was open.
    func refusesPassword(for username: String, from ip: String, logger: Logger) -> LoginProtection.Kind? {
        let kind = protection.withLockedValue { protection -> LoginProtection.Kind? in
            if protection.isBlocked(address: ip, now: .now) { return .address }
            return protection.isBlocked(user: username, from: ip, now: .now) ? .user : nil
        }
        switch kind {
        case .user?:
            BerthMetrics.loginRefused(kind: "user")
            logger.log(.notice, "AUTH_PROTECTION_USER_BLOCKED", "password refused without checking: too many recent failures for this username", [LogKey.username: "\(username)"])
        case .address?:
            BerthMetrics.loginRefused(kind: "address")
            logger.log(.notice, "SSH_LOGIN_BLOCKED", "password refused and connection closed: too many failed passwords from this address", [LogKey.username: "\(username)"])
        case nil: break
        }
        return kind
    }

    /// Counts a rejected password; returns how long to wait before the failure reply and
    /// whether the address is blocked from now on.
    func passwordFailed(username: String, ip: String, logger: Logger) -> (delay: Duration, addressBlocked: Bool) {
        let verdict = protection.withLockedValue { $0.recordFailure(address: ip, user: username, now: .now) }
        for kind in verdict.blocked {
            BerthMetrics.loginBlocked(kind: kind.rawValue)
            let what = kind == .address ? "address \(LoginProtection.addressKey(ip))" : "username"
            logger.log(
                .warning, "AUTH_PROTECTION_BLOCKED", "too many failed passwords; \(what) blocked for \(protection.withLockedValue { $0.config.blockDuration })",
                [LogKey.username: "\(username)", "kind": "\(kind.rawValue)"])
        }
        if verdict.delay > .zero { BerthMetrics.loginDelayed() }
        return (verdict.delay, verdict.blocked.contains(.address))
    }

    func succeeded(username: String) {
        protection.withLockedValue { $0.recordSuccess(user: username) }
    }
}
