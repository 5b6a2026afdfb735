import BerthConfig
import Foundation
import Yams

/// One user of the example server, as written in the users file.
struct ExampleUser: Decodable, Sendable {
    var username: String
    var password: String?
    var authorizedKeys: [String]?
    var authenticatedUsername: String?
    var metadata: [String: String]?
    var environment: [String: String]?
    /// Names of `metadata` and `environment` entries to send marked sensitive.
    var sensitive: [String]?
    /// Path → text content; sent base64-encoded as the protocol requires.
    var files: [String: String]?
    /// Any configuration subset, returned by /config.
    var config: ConfigValue?
}

struct UserDirectory: Sendable {
    let users: [String: ExampleUser]

    static func load(path: String) throws -> UserDirectory {
        struct File: Decodable { var users: [ExampleUser] }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let file = try YAMLDecoder().decode(File.self, from: text)
        return UserDirectory(users: Dictionary(file.users.map { ($0.username, $0) }, uniquingKeysWith: { _, last in last }))
    }
}
