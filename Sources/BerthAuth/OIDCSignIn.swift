import AsyncHTTPClient
import BerthConfig
import BerthCore
import Foundation
import JWTKit
import Logging
import NIOCore

/// Sign-in with an OpenID Connect provider over keyboard-interactive as ContainerSSH does: the
/// device authorization grant (RFC 8628) first when enabled, the authorization-code grant (with
/// PKCE) when the device flow is off or cannot start. The ID token is verified with jwt-kit
/// against the provider's JWKS (signature, issuer, audience, expiry, nonce). docs/security.md,
/// "OAuth2 / OIDC".
final class OIDCSignIn: OAuth2SignIn {
    private let config: OAuth2Config
    private let http: OAuth2HTTP
    private let provider: OIDCProvider
    private let logger: Logger

    init(config: OAuth2Config, logger: Logger) throws {
        self.config = config
        self.logger = logger
        http = try OAuth2HTTP(config.oidc.http)
        provider = OIDCProvider(http: http, issuerURL: config.oidc.http.url, clientId: config.clientId)
    }

    func shutdown() async { await http.shutdown() }

    typealias Discovery = OIDCProvider.Discovery

    func login(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        let deadline = ContinuousClock.now + config.authTimeout.duration
        return await attempt(metadata, provider: "OIDC", logger: logger) {
            let discovery = try await provider.discover()
            let scopes = ["openid"] + config.oidc.extraScopes
            let client = ["client_id": config.clientId, "client_secret": config.clientSecret]
            var tokens: OAuth2HTTP.TokenReply?
            var nonce: String?
            if config.oidc.deviceFlow, let device = try await startDevice(discovery, scopes: scopes, client: client, username: metadata.username) {
                tokens = try await http.deviceSignIn(
                    device, tokenURL: discovery.token_endpoint, form: client, deadline: deadline, conversation: conversation, metadata: metadata, logger: logger)
            }
            if tokens == nil {
                guard let endpoint = discovery.authorization_endpoint else {
                    throw OAuth2ProviderError("the provider's discovery document has no authorization_endpoint")
                }
                let request = OAuth2HTTP.AuthorizationRequest(endpoint: endpoint, clientId: config.clientId, redirectURI: config.oidc.redirectURI, scopes: scopes)
                nonce = request.nonce
                tokens = try await http.codeSignIn(
                    request, tokenURL: discovery.token_endpoint, redirectURI: config.oidc.redirectURI, form: client, deadline: deadline,
                    conversation: conversation, metadata: metadata, logger: logger)
            }
            guard let tokens else { throw OAuth2ProviderError("no sign-in flow produced tokens") }
            guard let idToken = tokens.id_token, let accessToken = tokens.access_token else {
                throw OAuth2ProviderError("the token answer has no id_token or access_token")
            }
            if config.oidc.enforceScopes {
                let granted = Set((tokens.scope ?? "").split(separator: " ").map(String.init))
                let missing = config.oidc.extraScopes.filter { !granted.contains($0) }
                if !missing.isEmpty { throw OAuth2UserRefusal(reason: "the provider did not grant the scopes \(missing.joined(separator: " ")) (enforceScopes)") }
            }
            let identity = try await provider.identity(idToken: idToken, accessToken: accessToken, discovery: discovery, nonce: nonce)
            guard let username = identity[config.oidc.usernameField]?.stringValue, !username.isEmpty else {
                throw OAuth2ProviderError("the identity has no string field \"\(config.oidc.usernameField)\" (usernameField)")
            }
            var entries: [String: MetadataValue] = ["OIDC_TOKEN": MetadataValue(value: accessToken, sensitive: true)]
            if case .object(let fields) = identity {
                for (field, value) in fields {
                    if let text = value.stringValue { entries["OIDC_USERINFO_\(field.uppercased())"] = MetadataValue(value: text) }
                }
            }
            return metadata.merging(MetadataUpdate(authenticatedUsername: username, metadata: entries))
        }
    }

    /// nil when the device flow cannot start and the code flow may take over (ContainerSSH's order).
    private func startDevice(_ discovery: Discovery, scopes: [String], client: [String: String], username: String) async throws -> OAuth2HTTP.DeviceAuthorization? {
        do {
            guard let endpoint = discovery.device_authorization_endpoint else {
                throw OAuth2ProviderError("the provider's discovery document has no device_authorization_endpoint")
            }
            let answer = try await http.post(endpoint, client.merging(["scope": scopes.joined(separator: " ")]) { _, new in new }).body
            return try http.decode(answer, "device authorization")
        } catch let error as OAuth2ProviderError where config.oidc.authorizationCodeFlow {
            logger.log(
                .warning, "AUTH_OAUTH2_DEVICE_FLOW_UNAVAILABLE", "the device flow cannot start; using the authorization code flow: \(error)", [LogKey.username: "\(username)"])
            return nil
        }
    }
}
