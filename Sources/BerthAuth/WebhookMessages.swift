import BerthCore
import Foundation

/// The flat JSON request body of every auth and config webhook (docs/configuration.md, "Webhook blocks").
struct WebhookRequest: Encodable {
    struct Entry: Codable {
        var value: String
        var sensitive: Bool?
    }

    var username: String
    var remoteAddress: String
    var connectionId: String
    var clientVersion: String
    var authenticatedUsername: String?
    var passwordBase64: String?
    var publicKey: String?
    var metadata: [String: Entry]?
    var environment: [String: Entry]?
    var files: [String: Entry]?

    /// `includeSensitive: false` leaves out entries marked sensitive (the config webhook's
    /// `transmitSensitiveMetadata` default): they are applied, but not sent on.
    init(_ metadata: ConnectionMetadata, authenticated: Bool = false, includeSensitive: Bool = true) {
        username = metadata.username
        remoteAddress = metadata.remoteAddress.description
        connectionId = metadata.connectionID.hex
        clientVersion = metadata.clientVersion
        authenticatedUsername = authenticated ? metadata.effectiveUsername : nil
        let keep: (Bool) -> Bool = { sensitive in includeSensitive || !sensitive }
        self.metadata = Self.entries(metadata.metadata.filter { keep($0.value.sensitive) }.mapValues { ($0.value, $0.sensitive) })
        environment = Self.entries(metadata.environment.filter { keep($0.value.sensitive) }.mapValues { ($0.value, $0.sensitive) })
        files = Self.entries(metadata.files.filter { keep($0.value.sensitive) }.mapValues { (Data($0.value).base64EncodedString(), $0.sensitive) })
    }

    private static func entries(_ map: [String: (String, Bool)]) -> [String: Entry]? {
        map.isEmpty ? nil : map.mapValues { Entry(value: $0.0, sensitive: $0.1) }
    }

    func encoded() -> [UInt8] {
        Array((try? JSONCoding.encode(self)) ?? Data("{}".utf8))
    }
}

/// A webhook reply: `success` is required and must be a boolean; unknown fields are ignored.
struct WebhookReply: Decodable {
    var success: Bool
    var authenticatedUsername: String?
    var metadata: [String: WebhookRequest.Entry]?
    var environment: [String: WebhookRequest.Entry]?
    var files: [String: WebhookRequest.Entry]?

    static func decode(_ bytes: [UInt8]) throws -> WebhookReply {
        do {
            return try JSONCoding.decode(WebhookReply.self, from: bytes)
        } catch {
            throw WebhookError(code: "WEBHOOK_DECODE_FAILED", message: "reply is not a valid webhook answer (\(Self.explain(error)))", retryable: true)
        }
    }

    /// The metadata maps a successful reply adds to the connection.
    func update() throws -> MetadataUpdate {
        var files: [String: FileValue] = [:]
        for (path, entry) in self.files ?? [:] {
            guard let data = Data(base64Encoded: entry.value) else {
                throw WebhookError(code: "WEBHOOK_DECODE_FAILED", message: "files[\(path)] is not base64", retryable: true)
            }
            files[path] = FileValue(value: Array(data), sensitive: entry.sensitive ?? false)
        }
        return MetadataUpdate(
            authenticatedUsername: authenticatedUsername,
            metadata: (metadata ?? [:]).mapValues { MetadataValue(value: $0.value, sensitive: $0.sensitive ?? false) },
            environment: (environment ?? [:]).mapValues { MetadataValue(value: $0.value, sensitive: $0.sensitive ?? false) },
            files: files
        )
    }

    private static func explain(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing \(key.stringValue)"
        case DecodingError.typeMismatch(_, let context): return "wrong type at \(context.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted: return "not JSON"
        default: return "\(error)"
        }
    }
}
