import AsyncHTTPClient
import BerthConfig
import BerthCore
import Crypto
import Foundation
import Logging
import NIOCore

/// One way to sign in over keyboard-interactive with an OAuth2 provider (docs/security.md,
/// "OAuth2 / OIDC"). The outcome goes through authz and the config webhook like any login.
protocol OAuth2SignIn: Sendable {
    func login(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome
    func shutdown() async
}

extension OAuth2SignIn {
    /// One attempt's outcome: the user's or the provider's "no" (`OAuth2UserRefusal`) fails the
    /// login; trouble with the provider (`OAuth2ProviderError`) makes it unavailable.
    func attempt(
        _ metadata: ConnectionMetadata, provider: String, logger: Logger, _ body: () async throws -> ConnectionMetadata
    ) async -> AuthOutcome {
        do {
            return .success(try await body())
        } catch let refusal as OAuth2UserRefusal {
            return .failure(reason: refusal.reason)
        } catch let error as OAuth2ProviderError {
            logger.log(.warning, "AUTH_OAUTH2_PROVIDER_ERROR", "\(provider) sign-in failed: \(error)", [LogKey.username: "\(metadata.username)"])
            return .unavailable(reason: error.description)
        } catch {
            return .failure(reason: "the sign-in was abandoned (\(error))")
        }
    }
}

enum OAuth2SignInFactory {
    static func make(_ config: OAuth2Config, logger: Logger) throws -> any OAuth2SignIn {
        switch config.provider {
        case "github": return try GitHubDeviceFlow(config: config, logger: logger)
        case "generic": return try GenericCodeFlow(config: config, logger: logger)
        default: return try OIDCSignIn(config: config, logger: logger)
        }
    }
}

/// A problem with the provider or its answers (not the user's doing): the login is unavailable.
struct OAuth2ProviderError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The user's or the provider's "no": access_denied, expired_token, the time limit, a check
/// the identity does not pass.
struct OAuth2UserRefusal: Error {
    let reason: String
}

/// The HTTP side shared by the providers: one client per provider, JSON in, forms out, and the
/// device flow's polling (RFC 8628 §3.4–3.5).
struct OAuth2HTTP: Sendable {
    let client: HTTPClient
    let timeout: BerthDuration

    init(_ http: HTTPClientConfig) throws {
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = http.allowRedirects ? .follow(max: 5, allowCycles: false) : .disallow
        if http.url.lowercased().hasPrefix("https://") {
            configuration.tlsConfiguration = try TLSSettings.make(http)
        }
        let timeout = TimeAmount.nanoseconds(http.timeout.nanoseconds)
        configuration.timeout = .init(connect: timeout, read: timeout)
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.timeout = http.timeout
    }

    func shutdown() async { try? await client.shutdown() }

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
        /// GitHub sends the new interval with `slow_down`.
        let interval: Int?
    }

    /// Shows the code with ContainerSSH's wording (a prompt without questions only shows the
    /// instruction), then polls until the user approves, denies, or time runs out.
    func deviceSignIn(
        _ device: DeviceAuthorization, tokenURL: String, form: [String: String], deadline: ContinuousClock.Instant,
        conversation: any KeyboardInteractiveConversation, metadata: ConnectionMetadata, logger: Logger
    ) async throws -> TokenReply {
        let link = device.verification_uri_complete ?? device.verification_uri
        _ = try await conversation.ask(name: "", instruction: "Please click the following link: \(link)\n\nEnter the following code: \(device.user_code)\n", prompts: [])
        logger.log(.debug, "AUTH_OAUTH2_AUTHORIZATION_PENDING", "device code shown; waiting for the user", [LogKey.username: "\(metadata.username)"])
        let form = form.merging(["grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": device.device_code]) { _, new in new }
        var interval = max(1, device.interval ?? 5)
        let deadline = min(deadline, .now + .seconds(device.expires_in))
        while true {
            guard ContinuousClock.now + .seconds(interval) < deadline else {
                logger.log(.info, "AUTH_OAUTH2_TIMEOUT", "the user did not finish the device sign-in in time")
                throw OAuth2UserRefusal(reason: "the device sign-in was not completed in time")
            }
            // RFC 8628 §3.5: wait `interval` seconds between polls.
            try await Task.sleep(for: .seconds(interval))
            let (status, body) = try await post(tokenURL, form, acceptErrors: true)
            let reply: TokenReply = try decode(body, "token")
            // GitHub answers pending polls with HTTP 200 and an `error` field.
            if status == 200 && reply.error == nil { return reply }
            switch reply.error {
            case "authorization_pending": continue
            case "slow_down": interval = max(interval + 5, reply.interval ?? 0)
            case "access_denied": throw OAuth2UserRefusal(reason: "the user denied the sign-in at the provider")
            case "expired_token": throw OAuth2UserRefusal(reason: "the device code expired before the user signed in")
            default: throw OAuth2ProviderError("the token endpoint answered HTTP \(status) \(reply.error ?? "without an error code")")
            }
        }
    }

    /// One authorization-code sign-in's secrets: `state` ties the pasted code to this connection,
    /// the PKCE verifier (RFC 7636, S256) to this server, the nonce the ID token to this request.
    struct AuthorizationRequest: Sendable {
        let state: String
        let verifier: String
        let nonce: String
        let url: String

        /// RFC 7636 §4.2, S256.
        static func challenge(_ verifier: String) -> String {
            Data(SHA256.hash(data: Data(verifier.utf8))).base64URLEncoded
        }

        init(endpoint: String, clientId: String, redirectURI: String, scopes: [String]) {
            func random(_ count: Int) -> String {
                var generator = SystemRandomNumberGenerator()
                return Data((0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }).base64URLEncoded
            }
            state = random(16)
            verifier = random(32)
            nonce = random(16)
            let challenge = Self.challenge(verifier)
            var components = URLComponents(string: endpoint) ?? URLComponents()
            var query = components.queryItems ?? []
            query += [
                URLQueryItem(name: "response_type", value: "code"), URLQueryItem(name: "client_id", value: clientId),
                URLQueryItem(name: "redirect_uri", value: redirectURI), URLQueryItem(name: "state", value: state),
                URLQueryItem(name: "code_challenge", value: challenge), URLQueryItem(name: "code_challenge_method", value: "S256"),
            ]
            if !scopes.isEmpty {
                query.append(URLQueryItem(name: "scope", value: scopes.joined(separator: " ")))
                if scopes.contains("openid") { query.append(URLQueryItem(name: "nonce", value: nonce)) }
            }
            components.queryItems = query
            url = components.string ?? endpoint
        }
    }

    /// ContainerSSH's wording: a link, then one hidden question for `state|code` as the redirect
    /// page shows it; the code is exchanged with the verifier.
    func codeSignIn(
        _ request: AuthorizationRequest, tokenURL: String, redirectURI: String, form: [String: String], deadline: ContinuousClock.Instant,
        conversation: any KeyboardInteractiveConversation, metadata: ConnectionMetadata, logger: Logger
    ) async throws -> TokenReply {
        let answers = try await conversation.ask(
            name: "", instruction: "Please click the following link to log in: \(request.url)\n\n", prompts: [("Please paste the received code: ", false)])
        guard ContinuousClock.now < deadline else {
            logger.log(.info, "AUTH_OAUTH2_TIMEOUT", "the user did not paste the code in time")
            throw OAuth2UserRefusal(reason: "the sign-in was not completed in time")
        }
        let pasted = (answers.first ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        guard let bar = pasted.firstIndex(of: "|") else {
            throw OAuth2UserRefusal(reason: "the pasted text is not the state|code the redirect page shows")
        }
        guard String(pasted[..<bar]) == request.state else {
            logger.log(.info, "AUTH_OAUTH2_STATE_MISMATCH", "the pasted code belongs to another sign-in", [LogKey.username: "\(metadata.username)"])
            throw OAuth2UserRefusal(reason: "the pasted code belongs to another sign-in (state does not match)")
        }
        let code = String(pasted[pasted.index(after: bar)...])
        return try await exchangeCode(code, verifier: request.verifier, tokenURL: tokenURL, redirectURI: redirectURI, form: form)
    }

    /// The code grant's second half (RFC 6749 §4.1.3), with the PKCE verifier (RFC 7636 §4.5).
    func exchangeCode(_ code: String, verifier: String, tokenURL: String, redirectURI: String, form: [String: String]) async throws -> TokenReply {
        let exchange = form.merging([
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirectURI, "code_verifier": verifier,
        ]) { _, new in new }
        let (status, body) = try await post(tokenURL, exchange, acceptErrors: true)
        let reply: TokenReply = try decode(body, "token")
        if status == 200 && reply.error == nil { return reply }
        // RFC 6749 §5.2: invalid_grant is a wrong, used or expired code: the user's mistake.
        if reply.error == "invalid_grant" { throw OAuth2UserRefusal(reason: "the provider refused the code (invalid_grant)") }
        throw OAuth2ProviderError("the token endpoint answered HTTP \(status) \(reply.error ?? "without an error code")")
    }

    func decode<T: Decodable>(_ body: [UInt8], _ what: String) throws -> T {
        do {
            return try JSONCoding.decode(T.self, from: body)
        } catch {
            throw OAuth2ProviderError("the \(what) answer is not what the provider's API describes (\(error))")
        }
    }

    /// A free-form answer (claims, userinfo, a GitHub user): read by the shared decoder, which
    /// takes any JSON escape, surrogate pairs included (the YAML parser behind
    /// `ConfigValue.parse` refuses those, and providers send them for non-BMP characters).
    func jsonObject(_ body: [UInt8], _ what: String) throws -> ConfigValue {
        guard let object = try? JSONCoding.decode(ConfigValue.self, from: body), case .object = object else {
            throw OAuth2ProviderError("the \(what) answer is not a JSON object")
        }
        return object
    }

    func get(_ url: String, bearer: String? = nil, accept: String = "application/json") async throws -> (status: UInt, body: [UInt8]) {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: accept)
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        return try await send(request)
    }

    func getOK(_ url: String, bearer: String? = nil, accept: String = "application/json") async throws -> [UInt8] {
        let (status, body) = try await get(url, bearer: bearer, accept: accept)
        guard status == 200 else { throw OAuth2ProviderError("\(url) answered HTTP \(status)") }
        return body
    }

    func post(_ url: String, _ form: [String: String], acceptErrors: Bool = false) async throws -> (status: UInt, body: [UInt8]) {
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
        guard status == 200 || (acceptErrors && (status == 400 || status == 401)) else { throw OAuth2ProviderError("\(url) answered HTTP \(status)") }
        return (status, body)
    }

    private func send(_ request: HTTPClientRequest) async throws -> (UInt, [UInt8]) {
        do {
            let response = try await client.execute(request, timeout: .nanoseconds(timeout.nanoseconds))
            let body = try await response.body.collect(upTo: 1 << 20)
            return (response.status.code, Array(body.readableBytesView))
        } catch let error as OAuth2ProviderError {
            throw error
        } catch {
            throw OAuth2ProviderError("\(request.url): \(error)")
        }
    }
}

extension Data {
    /// RFC 4648 §5, without padding (RFC 7636 §3).
    var base64URLEncoded: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}
