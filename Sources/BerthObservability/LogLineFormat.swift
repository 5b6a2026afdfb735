import Foundation
import Logging

/// Renders one log line. Connection identity fields sit at the top level of ljson lines so that
/// `jq 'select(.connectionId == …)'` finds a whole connection.
enum LogLineFormat {
    private static let topLevelKeys = ["connectionId", "remoteAddress", "username"]

    static func json(level: String?, code: String, message: String, details: Logger.Metadata) -> String {
        var object: [String: Any] = ["code": code, "message": message]
        if let level {
            object["timestamp"] = timestamp()
            object["level"] = level
        }
        var rest = details
        for key in topLevelKeys {
            if let value = rest.removeValue(forKey: key) { object[key] = plain(value) }
        }
        if !rest.isEmpty { object["details"] = rest.mapValues(plain) }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return "{\"code\":\"\(code)\",\"message\":\"unencodable log message\"}"
        }
        return String(decoding: data, as: UTF8.self)
    }

    static func text(level: String, code: String, message: String, details: Logger.Metadata) -> String {
        let labels = details.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        return "\(timestamp())\t\(level)\t\(code)\t\(message)" + (labels.isEmpty ? "" : " (\(labels))")
    }

    private static func plain(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): return text
        case .stringConvertible(let convertible): return convertible.description
        case .array(let values): return values.map(plain)
        case .dictionary(let values): return values.mapValues(plain)
        }
    }

    private static func timestamp() -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date())
    }
}
