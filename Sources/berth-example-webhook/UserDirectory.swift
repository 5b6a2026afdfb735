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
    var config: YAMLValue?
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

/// A YAML subtree carried through to JSON unchanged (for per-user config).
enum YAMLValue: Decodable, Sendable {
    case null, bool(Bool), int(Int), double(Double), string(String), array([YAMLValue]), object([String: YAMLValue])

    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([YAMLValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: YAMLValue].self))
        }
    }

    var json: Any {
        switch self {
        case .null: return NSNull()
        case .bool(let value): return value
        case .int(let value): return value
        case .double(let value): return value
        case .string(let value): return value
        case .array(let values): return values.map(\.json)
        case .object(let values): return values.mapValues(\.json)
        }
    }
}
