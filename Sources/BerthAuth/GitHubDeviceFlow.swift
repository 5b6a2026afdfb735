import BerthConfig
import BerthCore
import Foundation
import Logging

/// GitHub's device flow (its variant of RFC 8628 on `/login/device/code` and
/// `/login/oauth/access_token`), then its REST API for who the user is and the checks the
/// operator asked for: the SSH username, two-factor status, organisation membership, scopes.
/// docs/security.md, "OAuth2 / OIDC".
final class GitHubDeviceFlow: OAuth2SignIn {
    private let config: OAuth2Config
    private let http: OAuth2HTTP
    private let logger: Logger

    init(config: OAuth2Config, logger: Logger) throws {
        self.config = config
        self.logger = logger
        http = try OAuth2HTTP(config.github.http)
    }

    func shutdown() async { await http.shutdown() }

    private var github: GitHubConfig { config.github }

    private func endpoint(_ base: String, _ path: String) -> String {
        (base.hasSuffix("/") ? String(base.dropLast()) : base) + path
    }

    func login(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        let deadline = ContinuousClock.now + config.authTimeout.duration
        return await attempt(metadata, provider: "GitHub", logger: logger) {
            let device: OAuth2HTTP.DeviceAuthorization = try http.decode(
                try await http.post(endpoint(github.http.url, "/login/device/code"), ["client_id": config.clientId, "scope": github.scopes.joined(separator: " ")]).body,
                "device authorization")
            let tokens = try await http.deviceSignIn(
                device, tokenURL: endpoint(github.http.url, "/login/oauth/access_token"), form: ["client_id": config.clientId], deadline: deadline,
                conversation: conversation, metadata: metadata, logger: logger)
            guard let token = tokens.access_token else { throw OAuth2ProviderError("the token answer has no access_token") }
            try checkScopes(tokens.scope ?? "", username: metadata.username)
            let user = try http.jsonObject(try await http.getOK(endpoint(github.apiURL, "/user"), bearer: token, accept: "application/vnd.github+json"), "GitHub user")
            guard let login = user["login"]?.stringValue, !login.isEmpty else {
                logger.log(.warning, "GITHUB_USER_REQUEST_FAILED", "the GitHub user answer has no login", [LogKey.username: "\(metadata.username)"])
                throw OAuth2ProviderError("the GitHub user answer has no login")
            }
            if github.enforceUsername && login.lowercased() != metadata.username.lowercased() {
                logger.log(.info, "GITHUB_USERNAME_DOES_NOT_MATCH", "the SSH username is not the GitHub login (enforceUsername)", [LogKey.username: "\(metadata.username)"])
                throw OAuth2UserRefusal(reason: "the SSH username \(metadata.username) is not the GitHub login \(login) (enforceUsername)")
            }
            if github.require2FA && user["two_factor_authentication"] != .bool(true) {
                logger.log(.info, "GITHUB_2FA_NOT_ENABLED", "the GitHub account has no two-factor authentication (require2FA)", [LogKey.username: "\(metadata.username)"])
                throw OAuth2UserRefusal(reason: "the GitHub account \(login) does not use two-factor authentication (require2FA)")
            }
            if !github.requireOrgMembership.isEmpty {
                try await checkMembership(login: login, token: token, username: metadata.username)
            }
            return metadata.merging(MetadataUpdate(authenticatedUsername: login, metadata: Self.metadata(user, token: token)))
        }
    }

    /// GitHub lists granted scopes comma-separated; a user may untick any of them.
    private func checkScopes(_ granted: String, username: String) throws {
        let scopes = Set(granted.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init))
        // What the checks need is always required; the operator's extras only with enforceScopes.
        var needed = github.enforceScopes ? github.extraScopes : []
        if !github.requireOrgMembership.isEmpty { needed.append("read:org") }
        if github.require2FA { needed.append("read:user") }
        let missing = needed.filter { !scopes.contains($0) }
        guard missing.isEmpty else {
            logger.log(.info, "GITHUB_REQUIRED_SCOPE_NOT_GRANTED", "the user did not grant \(missing.joined(separator: " "))", [LogKey.username: "\(username)"])
            throw OAuth2UserRefusal(reason: "the GitHub sign-in did not grant the scopes \(missing.joined(separator: " "))")
        }
    }

    private func checkMembership(login: String, token: String, username: String) async throws {
        let org = github.requireOrgMembership
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-_.")
        let path = "/user/memberships/orgs/" + (org.addingPercentEncoding(withAllowedCharacters: allowed) ?? org)
        let (status, body) = try await http.get(endpoint(github.apiURL, path), bearer: token, accept: "application/vnd.github+json")
        // 404 and 403: GitHub's way of saying "not a member" (or not visible to this token).
        struct Membership: Decodable { let state: String? }
        if status == 200, (try? http.decode(body, "organisation membership") as Membership)?.state == "active" { return }
        guard status == 200 || status == 403 || status == 404 else {
            logger.log(.warning, "GITHUB_USER_REQUEST_FAILED", "the membership request answered HTTP \(status)", [LogKey.username: "\(username)"])
            throw OAuth2ProviderError("the GitHub membership request answered HTTP \(status)")
        }
        logger.log(.info, "GITHUB_NOT_ORG_MEMBER", "\(login) is not an active member of \(org) (requireOrgMembership)", [LogKey.username: "\(username)"])
        throw OAuth2UserRefusal(reason: "the GitHub account \(login) is not an active member of \(org) (requireOrgMembership)")
    }

    /// ContainerSSH's names (`GITHUB_` + the name); all sensitive (never sent on to later webhooks).
    static func metadata(_ user: ConfigValue, token: String) -> [String: MetadataValue] {
        var entries = ["token": MetadataValue(value: token, sensitive: true), "method": MetadataValue(value: "device")]
        let fields = [
            ("login", "login"), ("id", "id"), ("node_id", "node_id"), ("name", "name"), ("avatar_url", "avatar_url"), ("bio", "bio"), ("company", "company"),
            ("email", "email"), ("blog", "blog_url"), ("location", "location"), ("twitter_username", "twitter_username"), ("html_url", "profile_url"),
        ]
        for (field, key) in fields {
            switch user[field] {
            case .string(let text)? where !text.isEmpty: entries[key] = MetadataValue(value: text, sensitive: true)
            case .int(let number)?: entries[key] = MetadataValue(value: String(number), sensitive: true)
            case .double(let number)?: entries[key] = MetadataValue(value: String(number), sensitive: true)
            default: break
            }
        }
        return Dictionary(uniqueKeysWithValues: entries.map { ("GITHUB_" + $0.key.uppercased(), $0.value) })
    }
}
