import BerthConfig
import BerthCore
import Foundation
import Logging

/// ContainerSSH's `generic` provider: any OAuth2 server's authorization-code grant (with PKCE).
/// A plain OAuth2 token says nothing about who holds it, so the typed username stands and the
/// authz webhook decides with the token (`OAUTH2_TOKEN`). docs/security.md, "OAuth2 / OIDC".
final class GenericCodeFlow: OAuth2SignIn {
    private let config: OAuth2Config
    private let http: OAuth2HTTP
    private let logger: Logger

    init(config: OAuth2Config, logger: Logger) throws {
        self.config = config
        self.logger = logger
        http = try OAuth2HTTP(config.generic.tokenEndpoint)
    }

    func shutdown() async { await http.shutdown() }

    func login(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        let generic = config.generic
        return await attempt(metadata, provider: "OAuth2", logger: logger) {
            let request = OAuth2HTTP.AuthorizationRequest(endpoint: generic.authorizeEndpointURL, clientId: config.clientId, redirectURI: generic.redirectURI, scopes: [])
            let tokens = try await http.codeSignIn(
                request, tokenURL: generic.tokenEndpoint.url, redirectURI: generic.redirectURI,
                form: ["client_id": config.clientId, "client_secret": config.clientSecret], deadline: .now + config.authTimeout.duration,
                conversation: conversation, metadata: metadata, logger: logger)
            guard let token = tokens.access_token, !token.isEmpty else { throw OAuth2ProviderError("the token answer has no access_token") }
            return metadata.merging(MetadataUpdate(metadata: ["OAUTH2_TOKEN": MetadataValue(value: token, sensitive: true)]))
        }
    }
}
