import BerthConfig
import BerthCore
import Foundation
import Logging

/// Renders one log line. Connection identity fields sit at the top level of ljson lines so that
/// `jq 'select(.connectionId == …)'` finds a whole connection.
enum LogLineFormat {
    private static let topLevelKeys = ["connectionId", "remoteAddress", "username"]

    static func json(level: String?, code: String, message: String, details: Logger.Metadata) -> String {
        var fields: [(key: String, value: ConfigValue)] = [("code", .string(code)), ("message", .string(message))]
        if let level {
            fields.append(("timestamp", .string(timestamp())))
            fields.append(("level", .string(level)))
        }
        var rest = details
        for key in topLevelKeys {
            if let value = rest.removeValue(forKey: key) { fields.append((key, plain(value))) }
        }
        if !rest.isEmpty { fields.append(("details", .object(rest.map { ($0.key, plain($0.value)) }))) }
        return ConfigRenderer.compactJSON(.object(fields), sortedKeys: true)
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

    private static func plain(_ value: Logger.MetadataValue) -> ConfigValue {
        switch value {
        case .string(let text): return .string(text)
        case .stringConvertible(let convertible): return .string(convertible.description)
        case .array(let values): return .array(values.map(plain))
        case .dictionary(let values): return .object(values.map { ($0.key, plain($0.value)) })
        }
    }

    private static func timestamp() -> String { UTCTimestamp.rfc3339() }
}
