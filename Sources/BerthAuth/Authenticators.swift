import BerthConfig
import BerthCore
import Foundation
import Logging

/// Checks one password attempt.
protocol PasswordAuthenticator: Sendable {
    func authenticate(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome
}

/// Checks one public key (in authorized_keys form); possession was already proven by the SSH layer.
protocol PublicKeyAuthenticator: Sendable {
    func authenticate(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome
    /// The user's key lines, where `cert-authority` lines may vouch for a certificate.
    func keyLines(_ metadata: ConnectionMetadata) -> [AuthorizedKeys.Source]
}

extension PublicKeyAuthenticator {
    func keyLines(_ metadata: ConnectionMetadata) -> [AuthorizedKeys.Source] { [] }
}

extension AuthWebhookClient: PasswordAuthenticator, PublicKeyAuthenticator {
    func authenticate(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        await self.password(metadata, password: password)
    }

    func authenticate(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        await self.publicKey(metadata, key: publicKey)
    }
}

struct DisabledAuthenticator: PasswordAuthenticator, PublicKeyAuthenticator {
    func authenticate(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        .unavailable(reason: "password authentication is not configured")
    }

    func authenticate(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        .unavailable(reason: "public key authentication is not configured")
    }
}

/// Users listed in the configuration or a users file (docs/configuration.md, "Built-in users").
struct StaticUsersAuthenticator: PasswordAuthenticator, PublicKeyAuthenticator {
    private let users: [String: StaticUser]
    private let logger: Logger?

    init(config: StaticUsersConfig, logger: Logger? = nil) throws {
        self.logger = logger
        users = Dictionary(try config.allUsers().map { ($0.username, $0) }, uniquingKeysWith: { _, last in last })
    }

    func authenticate(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        let user = users[metadata.username]
        // An unknown user costs as much as a known one, so response times don't reveal names.
        let hash = user.map(\.passwordHash).flatMap { $0.isEmpty ? nil : $0 } ?? CryptPassword.decoyHash
        let matches = await PasswordHashing.verify(password, hash: hash)
        guard let user, !user.passwordHash.isEmpty, matches else {
            return .failure(reason: "unknown user or wrong password")
        }
        return .success(metadata.merging(MetadataUpdate()))
    }

    func authenticate(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        guard users[metadata.username] != nil, let offered = AuthorizedKeys.key(offered: publicKey) else {
            return .failure(reason: "key not authorized for this user")
        }
        return AuthorizedKeys.authorize(offered, lines: keyLines(metadata), metadata: metadata, logger: logger)
    }

    func keyLines(_ metadata: ConnectionMetadata) -> [AuthorizedKeys.Source] {
        guard let user = users[metadata.username] else { return [] }
        return user.authorizedKeys.enumerated().map {
            AuthorizedKeys.Source(location: "the static user \(user.username)'s authorizedKeys[\($0.offset)]", text: $0.element)
        }
    }
}

/// Per-user authorized_keys files found by a path template such as `/etc/berth/keys/%u`.
struct AuthorizedKeysAuthenticator: PublicKeyAuthenticator {
    let pathTemplate: String
    var logger: Logger?

    func authenticate(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        guard let path = AuthorizedKeys.path(template: pathTemplate, username: metadata.username) else {
            return .failure(reason: "username not usable in a file name")
        }
        guard FileManager.default.isReadableFile(atPath: path) else { return .failure(reason: "no authorized_keys file for this user") }
        guard let offered = AuthorizedKeys.key(offered: publicKey) else { return .failure(reason: "key not in the user's authorized_keys") }
        return AuthorizedKeys.authorize(offered, lines: keyLines(metadata), metadata: metadata, logger: logger)
    }

    func keyLines(_ metadata: ConnectionMetadata) -> [AuthorizedKeys.Source] {
        guard let path = AuthorizedKeys.path(template: pathTemplate, username: metadata.username),
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else { return [] }
        return text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated().map {
            AuthorizedKeys.Source(location: "\(path):\($0.offset + 1)", text: String($0.element))
        }
    }
}
