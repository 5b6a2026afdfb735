import BerthAuth
import BerthConfig
import Foundation
import NIOConcurrencyHelpers

/// Operators' sign-in and their browser sessions (docs/console.md, "Sign-in").
final class OperatorSignIn: Sendable {
    struct Session: Sendable {
        let token: String
        let csrf: String
        let username: String
        let role: ConsoleOperator.Role
        var lastSeen: ContinuousClock.Instant
        let signedIn: ContinuousClock.Instant
    }

    enum Outcome: Sendable {
        case signedIn(Session)
        case refused
        case rateLimited
    }

    /// Failed sign-ins allowed per remote address within `failureWindow`; more get 429.
    static let maxFailures = 5
    static let failureWindow: Duration = .seconds(300)
    static let maxTrackedAddresses = 10_000
    static let idleTimeout: Duration = .seconds(3600)
    static let maxLifetime: Duration = .seconds(12 * 3600)

    private let operators: [String: ConsoleOperator]
    private struct State {
        var sessions: [String: Session] = [:]
        var failures: [String: [ContinuousClock.Instant]] = [:]
    }

    private let state = NIOLockedValueBox(State())

    init(operators: [ConsoleOperator]) {
        self.operators = Dictionary(operators.map { ($0.username, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// Checks the rate limit before the (slow) hash, so a flood of guesses costs one lookup each.
    func signIn(username: String, password: String, from address: String) async -> Outcome {
        let now = ContinuousClock.now
        let limited = state.withLockedValue { state -> Bool in
            let recent = (state.failures[address] ?? []).filter { now - $0 < Self.failureWindow }
            state.failures[address] = recent.isEmpty ? nil : recent
            return recent.count >= Self.maxFailures
        }
        if limited { return .rateLimited }
        // OIDC-only operators (no passwordHash) have no password to guess.
        let account = operators[username].flatMap { $0.passwordHash.isEmpty ? nil : $0 }
        // An unknown name costs a hash too, so timing does not tell which names exist.
        let valid = await PasswordHashing.verify(Array(password.utf8), hash: account?.passwordHash ?? CryptPassword.decoyHash)
        guard valid, let account else {
            state.withLockedValue { state in
                state.failures[address, default: []].append(now)
                // Many addresses (an IPv6 range) must not grow the table without end.
                if state.failures.count > Self.maxTrackedAddresses {
                    state.failures = state.failures.filter { now - ($0.value.last ?? now) < Self.failureWindow }
                }
            }
            return .refused
        }
        state.withLockedValue { $0.failures[address] = nil }
        return .signedIn(newSession(account))
    }

    /// The operator an OIDC identity signs in as: only entries without a passwordHash, so a
    /// provider's user name can never take over a password operator's account.
    func oidcOperator(_ username: String) -> ConsoleOperator? {
        operators[username].flatMap { $0.passwordHash.isEmpty ? $0 : nil }
    }

    func newSession(_ account: ConsoleOperator) -> Session {
        let now = ContinuousClock.now
        let session = Session(token: Self.randomToken(), csrf: Self.randomToken(), username: account.username, role: account.role, lastSeen: now, signedIn: now)
        state.withLockedValue { state in
            state.sessions = state.sessions.filter { Self.alive($0.value, now) }
            state.sessions[session.token] = session
        }
        return session
    }

    func session(token: String?) -> Session? {
        guard let token, !token.isEmpty else { return nil }
        let now = ContinuousClock.now
        return state.withLockedValue { state -> Session? in
            guard var session = state.sessions[token] else { return nil }
            guard Self.alive(session, now) else {
                state.sessions[token] = nil
                return nil
            }
            session.lastSeen = now
            state.sessions[token] = session
            return session
        }
    }

    func signOut(token: String) { state.withLockedValue { _ = $0.sessions.removeValue(forKey: token) } }

    private static func alive(_ session: Session, _ now: ContinuousClock.Instant) -> Bool {
        now - session.lastSeen < idleTimeout && now - session.signedIn < maxLifetime
    }

    /// 32 bytes from the system's CSPRNG, hex.
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }

    /// Compares secrets in time independent of where they differ.
    static func same(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        return zip(x, y).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
