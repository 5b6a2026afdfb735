import Foundation
import Yams

public enum ConfigFormat: Sendable {
    case yaml, json

    /// `.json` files are JSON, everything else YAML (as ContainerSSH decides).
    public init(path: String) {
        self = path.lowercased().hasSuffix(".json") ? .json : .yaml
    }
}

extension ConfigValue {
    /// Parses a document; `source` names it in error messages.
    public static func parse(_ text: String, format: ConfigFormat, source: String) throws -> ConfigValue {
        // JSON is read by the YAML parser too (JSON is YAML 1.2 flow syntax), which keeps key
        // order and tells quoted strings from numbers.
        let kind = format == .json ? "JSON" : "YAML"
        do {
            guard let node = try Yams.compose(yaml: text) else { return .object([]) }
            return try ConfigValue(yaml: node, source: source)
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError(path: "", "\(source): invalid \(kind): \(error)")
        }
    }

    init(yaml node: Node, source: String) throws {
        switch node {
        case .scalar(let scalar):
            self = ConfigValue(scalar: scalar)
        case .sequence(let sequence):
            self = .array(try sequence.map { try ConfigValue(yaml: $0, source: source) })
        case .mapping(let mapping):
            var fields: [(key: String, value: ConfigValue)] = []
            for (key, value) in mapping {
                guard let name = key.string else {
                    throw ConfigError(path: "", "\(source): line \(key.mark?.line ?? 0): map keys must be strings")
                }
                fields.append((name, try ConfigValue(yaml: value, source: source)))
            }
            self = .object(fields)
        case .alias:
            throw ConfigError(path: "", "\(source): YAML aliases are not supported")
        }
    }

    /// Plain scalars are typed by their look (YAML 1.2 core schema); quoted ones stay strings.
    private init(scalar: Node.Scalar) {
        let text = scalar.string
        guard scalar.style == .plain else {
            self = .string(text)
            return
        }
        switch text {
        case "null", "Null", "NULL", "~", "": self = .null
        case "true", "True", "TRUE": self = .bool(true)
        case "false", "False", "FALSE": self = .bool(false)
        default:
            if let int = Int64(text) {
                self = .int(int)
            } else if let double = Double(text), text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) {
                self = .double(double)
            } else {
                self = .string(text)
            }
        }
    }

    /// How the value reads in an error message.
    var brief: String {
        switch self {
        case .null: return "null"
        case .bool(let value): return "\(value)"
        case .int(let value): return "\(value)"
        case .double(let value): return "\(value)"
        case .string(let value): return "\"\(value)\""
        case .array: return "a list"
        case .object: return "a map"
        }
    }

    /// The text of a string value, or nil for any other kind.
    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The value for `key` in a map, or nil.
    public subscript(key: String) -> ConfigValue? {
        guard case .object(let fields) = self else { return nil }
        return fields.last { $0.key == key }?.value
    }
}
