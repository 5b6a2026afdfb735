import AsyncHTTPClient
import BerthConfig
import BerthCore
import Foundation
import JWTKit
import Logging
import NIOCore

/// OAuth2 device authorization grant (RFC 8628) against an OpenID Connect provider, shown to
/// the user over keyboard-interactive as ContainerSSH does; the ID token is verified with jwt-kit
/// against the provider's JWKS (signature, issuer, audience, expiry). docs/security.md, "OAuth2 / OIDC".
final class OIDCDeviceFlow: Sendable {
    private let config: OAuth2Config
    private let client: HTTPClient
    private let logger: Logger

    init(config: OAuth2Config, logger: Logger) throws {
        self.config = config
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = config.oidc.http.allowRedirects ? .follow(max: 5, allowCycles: false) : .disallow
        if config.oidc.http.url.lowercased().hasPrefix("https://") {
            configuration.tlsConfiguration = try TLSSettings.make(config.oidc.http)
        }
        let timeout = TimeAmount.nanoseconds(config.oidc.http.timeout.nanoseconds)
        configuration.timeout = .init(connect: timeout, read: timeout)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async { try? await client.shutdown() }

    /// A problem with the provider or its answers (not the user's doing).
    struct ProviderError: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    struct Discovery: Decodable {
        let issuer: String
        let device_authorization_endpoint: String?
        let token_endpoint: String
        let userinfo_endpoint: String?
        let jwks_uri: String
    }

    struct DeviceAuthorization: Decodable {
        let device_code: String
        let user_code: String
        let verification_uri: String
        let verification_uri_complete: String?
        let expires_in: Int
        let interval: Int?
    }

    struct TokenReply: Decodable {
        let access_token: String?
        let id_token: String?
        let scope: String?
        let error: String?
        let error_description: String?
    }

    struct IDToken: JWTPayload {
        let iss: IssuerClaim
        let aud: AudienceClaim
        let exp: ExpirationClaim
        let sub: SubjectClaim

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
        }
    }

    func login(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        let deadline = ContinuousClock.now + config.authTimeout.duration
        do {
            let discovery = try await discover()
            guard let deviceEndpoint = discovery.device_authorization_endpoint else {
                throw ProviderError("the provider's discovery document has no device_authorization_endpoint")
            }
            let scopes = (["openid"] + config.oidc.extraScopes).joined(separator: " ")
            let device: DeviceAuthorization = try decode(
                try await post(deviceEndpoint, ["client_id": config.clientId, "client_secret": config.clientSecret, "scope": scopes]).body, "device authorization")
            let link = device.verification_uri_complete ?? device.verification_uri
            // ContainerSSH's wording; a prompt without questions only shows the instruction.
            _ = try await conversation.ask(name: "", instruction: "Please click the following link: \(link)\n\nEnter the following code: \(device.user_code)\n", prompts: [])
            logger.log(.debug, "AUTH_OAUTH2_AUTHORIZATION_PENDING", "device code shown; waiting for the user", [LogKey.username: "\(metadata.username)"])
            let tokens = try await poll(discovery, device: device, deadline: min(deadline, .now + .seconds(device.expires_in)))
            guard let idToken = tokens.id_token, let accessToken = tokens.access_token else {
                throw ProviderError("the token answer has no id_token or access_token")
            }
            if config.oidc.enforceScopes {
                let granted = Set((tokens.scope ?? "").split(separator: " ").map(String.init))
                let missing = config.oidc.extraScopes.filter { !granted.contains($0) }
                if !missing.isEmpty { return .failure(reason: "the provider did not grant the scopes \(missing.joined(separator: " ")) (enforceScopes)") }
            }
            let claims = try await verify(idToken, discovery: discovery)
            var identity = claims
            if let userinfo = discovery.userinfo_endpoint {
                identity = try await userInfo(userinfo, accessToken: accessToken)
                // OpenID Connect Core §5.3.2: userinfo must be about the ID token's subject.
                guard identity["sub"] as? String == claims["sub"] as? String else {
                    throw ProviderError("the userinfo subject differs from the ID token's")
                }
            }
            guard let username = identity[config.oidc.usernameField] as? String, !username.isEmpty else {
                throw ProviderError("the identity has no string field \"\(config.oidc.usernameField)\" (usernameField)")
            }
            var entries: [String: MetadataValue] = ["OIDC_TOKEN": MetadataValue(value: accessToken, sensitive: true)]
            for (field, value) in identity {
                if let text = value as? String { entries["OIDC_USERINFO_\(field.uppercased())"] = MetadataValue(value: text) }
            }
            return .success(metadata.merging(MetadataUpdate(authenticatedUsername: username, metadata: entries)))
        } catch let refusal as UserRefusal {
            return .failure(reason: refusal.reason)
        } catch let error as ProviderError {
            logger.log(.warning, "AUTH_OAUTH2_PROVIDER_ERROR", "OIDC sign-in failed: \(error)", [LogKey.username: "\(metadata.username)"])
            return .unavailable(reason: error.description)
        } catch {
            return .failure(reason: "the sign-in was abandoned (\(error))")
        }
    }

    /// The user's or the provider's "no": access_denied, expired_token, the time limit.
    struct UserRefusal: Error {
        let reason: String
    }

    private func poll(_ discovery: Discovery, device: DeviceAuthorization, deadline: ContinuousClock.Instant) async throws -> TokenReply {
        var interval = max(1, device.interval ?? 5)
        while true {
            guard ContinuousClock.now + .seconds(interval) < deadline else {
                logger.log(.info, "AUTH_OAUTH2_TIMEOUT", "the user did not finish the device sign-in in time")
                throw UserRefusal(reason: "the device sign-in was not completed in time")
            }
            // RFC 8628 §3.5: wait `interval` seconds between polls.
            try await Task.sleep(for: .seconds(interval))
            let (status, body) = try await post(
                discovery.token_endpoint,
                [
                    "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": device.device_code,
                    "client_id": config.clientId, "client_secret": config.clientSecret,
                ], acceptErrors: true)
            let reply: TokenReply = try decode(body, "token")
            if status == 200 { return reply }
            switch reply.error {
            case "authorization_pending": continue
            case "slow_down": interval += 5
            case "access_denied": throw UserRefusal(reason: "the user denied the sign-in at the provider")
            case "expired_token": throw UserRefusal(reason: "the device code expired before the user signed in")
            default: throw ProviderError("the token endpoint answered HTTP \(status) \(reply.error ?? "without an error code")")
            }
        }
    }

    private func verify(_ token: String, discovery: Discovery) async throws -> [String: Any] {
        let jwks = try await get(discovery.jwks_uri)
        let keys = JWTKeyCollection()
        let claims: IDToken
        do {
            try await keys.add(jwksJSON: String(decoding: jwks, as: UTF8.self))
            claims = try await keys.verify(token, as: IDToken.self)
        } catch {
            throw UserRefusal(reason: "the ID token does not verify against the provider's keys (\(error))")
        }
        guard claims.iss.value == discovery.issuer else { throw UserRefusal(reason: "the ID token's issuer \(claims.iss.value) is not \(discovery.issuer)") }
        guard claims.aud.value.contains(config.clientId) else {
            throw UserRefusal(reason: "the ID token is not for this client (audience \(claims.aud.value.joined(separator: ",")))")
        }
        // Verified above; the middle part holds every claim, usernameField may name any of them.
        let parts = token.split(separator: ".")
        var payload = String(parts[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while payload.count % 4 != 0 { payload += "=" }
        guard let data = Data(base64Encoded: payload), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ProviderError("the ID token's claims are not a JSON object")
        }
        return object
    }

    private func userInfo(_ url: String, accessToken: String) async throws -> [String: Any] {
        let body = try await get(url, bearer: accessToken)
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw ProviderError("the userinfo answer is not a JSON object")
        }
        return object
    }

    private func discover() async throws -> Discovery {
        let base = config.oidc.http.url.hasSuffix("/") ? config.oidc.http.url : config.oidc.http.url + "/"
        return try decode(try await get(base + ".well-known/openid-configuration"), "discovery")
    }

    private func decode<T: Decodable>(_ body: [UInt8], _ what: String) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(body))
        } catch {
            throw ProviderError("the \(what) answer is not what RFC 8628 / OpenID Connect describe (\(error))")
        }
    }

    private func get(_ url: String, bearer: String? = nil) async throws -> [UInt8] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        let (status, body) = try await send(request)
        guard status == 200 else { throw ProviderError("\(url) answered HTTP \(status)") }
        return body
    }

    private func post(_ url: String, _ form: [String: String], acceptErrors: Bool = false) async throws -> (status: UInt, body: [UInt8]) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encoded = form.filter { !$0.value.isEmpty }.sorted { $0.key < $1.key }
            .map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: allowed) ?? "")" }.joined(separator: "&")
        request.body = .bytes(ByteBuffer(string: encoded))
        let (status, body) = try await send(request)
        // RFC 6749 §5.2: token errors come as HTTP 400 (401 for client authentication).
        guard status == 200 || (acceptErrors && (status == 400 || status == 401)) else { throw ProviderError("\(url) answered HTTP \(status)") }
        return (status, body)
    }

    private func send(_ request: HTTPClientRequest) async throws -> (UInt, [UInt8]) {
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(config.oidc.http.timeout.nanoseconds))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (response.status.code, Array(body.readableBytesView))
        } catch let error as ProviderError {
            throw error
        } catch {
            throw ProviderError("\(request.url): \(error)")
        }
    }
}
