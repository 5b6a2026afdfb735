import BerthConfig
import Foundation
import Synchronization

/// The authorization-code flow (with PKCE S256, state and nonce) for a web application that
/// receives the redirect itself, as the operator console does: `start` builds the link to the
/// provider and the secrets the caller keeps server-side; `finish` exchanges the returned code
/// with the verifier and returns the verified identity. The caller checks `state`.
/// docs/security.md, "Operator console".
public final class OIDCCodeExchange: Sendable {
    private let http: OAuth2HTTP
    private let provider: OIDCProvider
    private let clientSecret: String
    private let redirectURI: String
    private let scopes: [String]
    private let usernameField: String
    /// Anyone who reaches the console can start a sign-in; the discovery document is fetched
    /// once per `discoveryLifetime`, not once per start.
    private let discovered = Mutex<(document: OIDCProvider.Discovery, at: ContinuousClock.Instant)?>(nil)
    static let discoveryLifetime: Duration = .seconds(300)

    /// One sign-in in progress: `url` is where the browser goes; the rest stays on the server.
    public struct Pending: Sendable {
        public let state: String
        let verifier: String
        let nonce: String
        let discovery: OIDCProvider.Discovery
        public let url: String
    }

    public struct Identity: Sendable {
        /// The value of `usernameField`.
        public let username: String
        public let subject: String
    }

    /// `refused`: the provider or the token said no (a bad code, a token that does not verify);
    /// `provider`: the provider could not be reached or answered outside its API.
    public struct Failure: Error, CustomStringConvertible {
        public enum Kind: Sendable { case refused, provider }
        public let kind: Kind
        public let description: String
    }

    public init(http config: HTTPClientConfig, clientId: String, clientSecret: String, redirectURI: String, extraScopes: [String], usernameField: String) throws {
        http = try OAuth2HTTP(config)
        provider = OIDCProvider(http: http, issuerURL: config.url, clientId: clientId)
        self.clientSecret = clientSecret
        self.redirectURI = redirectURI
        scopes = ["openid"] + extraScopes
        self.usernameField = usernameField
    }

    public func shutdown() async { await http.shutdown() }

    public func start() async throws(Failure) -> Pending {
        try await mapped {
            let discovery = try await discover()
            guard let endpoint = discovery.authorization_endpoint else {
                throw OAuth2ProviderError("the provider's discovery document has no authorization_endpoint")
            }
            let request = OAuth2HTTP.AuthorizationRequest(endpoint: endpoint, clientId: provider.clientId, redirectURI: redirectURI, scopes: scopes)
            return Pending(state: request.state, verifier: request.verifier, nonce: request.nonce, discovery: discovery, url: request.url)
        }
    }

    public func finish(code: String, pending: Pending) async throws(Failure) -> Identity {
        try await mapped {
            let discovery = pending.discovery
            let client = ["client_id": provider.clientId, "client_secret": clientSecret]
            let tokens = try await http.exchangeCode(code, verifier: pending.verifier, tokenURL: discovery.token_endpoint, redirectURI: redirectURI, form: client)
            guard let idToken = tokens.id_token, let accessToken = tokens.access_token else {
                throw OAuth2ProviderError("the token answer has no id_token or access_token")
            }
            let identity = try await provider.identity(idToken: idToken, accessToken: accessToken, discovery: discovery, nonce: pending.nonce)
            guard let username = identity[usernameField]?.stringValue, !username.isEmpty else {
                throw OAuth2ProviderError("the identity has no string field \"\(usernameField)\" (usernameField)")
            }
            return Identity(username: username, subject: identity["sub"]?.stringValue ?? "")
        }
    }

    private func discover() async throws -> OIDCProvider.Discovery {
        let now = ContinuousClock.now
        if let cached = discovered.withLock({ $0 }), now - cached.at < Self.discoveryLifetime { return cached.document }
        let document = try await provider.discover()
        discovered.withLock { $0 = (document, now) }
        return document
    }

    private func mapped<T>(_ body: () async throws -> T) async throws(Failure) -> T {
        do {
            return try await body()
        } catch let refusal as OAuth2UserRefusal {
            throw Failure(kind: .refused, description: refusal.reason)
        } catch let error as OAuth2ProviderError {
            throw Failure(kind: .provider, description: error.description)
        } catch {
            throw Failure(kind: .provider, description: "\(error)")
        }
    }
}
