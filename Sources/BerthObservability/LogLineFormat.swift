import BerthCore
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

    /// One line per event whatever the values hold: a username typed before login could
    /// otherwise end the line and forge the next one (or a field, with a tab).
    static func text(level: String, code: String, message: String, details: Logger.Metadata) -> String {
        let labels = details.sorted { $0.key < $1.key }.map { "\(escaped($0.key))=\(escaped("\($0.value)"))" }.joined(separator: " ")
        return "\(timestamp())\t\(level)\t\(escaped(code))\t\(escaped(message))" + (labels.isEmpty ? "" : " (\(labels))")
    }

    /// Control characters (C0, DEL, C1), the Unicode line and paragraph separators and the
    /// backslash become escapes, so an escaped line reads back unambiguously.
    static func escaped(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscape) else { return text }
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case _ where needsEscape(scalar): result += scalar.value <= 0xFF ? String(format: "\\x%02x", scalar.value) : String(format: "\\u%04x", scalar.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0..<0x20, 0x5C, 0x7F...0x9F, 0x2028, 0x2029: return true
        default: return false
        }
    }

    private static func plain(_ value: Logger.MetadataValue) -> Any {
        switch value {
        case .string(let text): return text
        case .stringConvertible(let convertible): return convertible.description
        case .array(let values): return values.map(plain)
        case .dictionary(let values): return values.mapValues(plain)
        }
    }

    private static func timestamp() -> String { UTCTimestamp.rfc3339() }
}
