import BerthAuth
import BerthConfig
import Foundation
import NIOConcurrencyHelpers

/// Console sign-in through an OpenID Connect provider (docs/console.md, "Sign-in through
/// OIDC"). The state, PKCE verifier and nonce of each sign-in in progress stay here, keyed by
/// a random token in a short-lived cookie; the callback must bring both the cookie and the
/// state the provider was given, once.
final class OperatorOIDC: Sendable {
    let exchange: OIDCCodeExchange
    let providerName: String

    /// How long a sign-in may take at the provider.
    static let pendingLifetime: Duration = .seconds(600)
    /// Anyone may start a sign-in, so the table is bounded: the oldest go first.
    static let maxPending = 1000

    private struct Entry {
        let pending: OIDCCodeExchange.Pending
        let started: ContinuousClock.Instant
    }

    private let pending = NIOLockedValueBox<[String: Entry]>([:])

    init(config: ConsoleOIDCConfig) throws {
        exchange = try OIDCCodeExchange(
            http: config.http, clientId: config.clientId, clientSecret: config.clientSecret, redirectURI: config.redirectURI,
            extraScopes: config.extraScopes, usernameField: config.usernameField)
        providerName = config.providerName
    }

    /// The cookie's token and where to send the browser.
    func start() async throws(OIDCCodeExchange.Failure) -> (token: String, url: String) {
        let request = try await exchange.start()
        let token = OperatorSignIn.randomToken()
        let now = ContinuousClock.now
        pending.withLockedValue { table in
            table = table.filter { now - $0.value.started < Self.pendingLifetime }
            if table.count >= Self.maxPending, let oldest = table.min(by: { $0.value.started < $1.value.started })?.key {
                table[oldest] = nil
            }
            table[token] = Entry(pending: request, started: now)
        }
        return (token, request.url)
    }

    /// The sign-in this cookie started, if `state` is the one it sent; used up either way.
    func take(token: String?, state: String?) -> OIDCCodeExchange.Pending? {
        guard let token, !token.isEmpty else { return nil }
        let now = ContinuousClock.now
        guard let entry = pending.withLockedValue({ $0.removeValue(forKey: token) }), now - entry.started < Self.pendingLifetime,
            let state, OperatorSignIn.same(state, entry.pending.state)
        else { return nil }
        return entry.pending
    }

    func shutdown() async { await exchange.shutdown() }
}
