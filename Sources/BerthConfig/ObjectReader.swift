/// Reads one map of the configuration strictly: every key it asks for is marked known, every
/// other key is reported as unknown when `finish()` is called, and every type problem is
/// recorded with its full dotted path.
struct ObjectReader {
    let path: String
    private let fields: [(key: String, value: ConfigValue)]
    let issues: ConfigIssues
    private var known: Set<String> = []

    init(_ value: ConfigValue?, path: String, issues: ConfigIssues) {
        self.path = path
        self.issues = issues
        switch value {
        case .none, .null?: fields = []
        case .object(let object)?: fields = object
        case let other?:
            fields = []
            issues.add(path, "expected a map, got \(other.brief)")
        }
    }

    func keyPath(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The raw value, marking the key as known.
    mutating func value(_ key: String) -> ConfigValue? {
        known.insert(key)
        guard let value = fields.last(where: { $0.key == key })?.value, value != .null else { return nil }
        return value
    }

    var keys: [String] { fields.map(\.key) }

    func has(_ key: String) -> Bool { fields.contains { $0.key == key } }

    mutating func string(_ key: String, _ fallback: String) -> String {
        switch value(key) {
        case nil: return fallback
        case .string(let text)?: return text
        case .int(let number)?: return String(number)
        case .double(let number)?: return String(number)
        case let other?:
            issues.add(keyPath(key), "expected a string, got \(other.brief)")
            return fallback
        }
    }

    mutating func bool(_ key: String, _ fallback: Bool) -> Bool {
        switch value(key) {
        case nil: return fallback
        case .bool(let flag)?: return flag
        case let other?:
            issues.add(keyPath(key), "expected true or false, got \(other.brief)")
            return fallback
        }
    }

    mutating func int(_ key: String, _ fallback: Int, minimum: Int? = nil) -> Int {
        switch value(key) {
        case nil: return fallback
        case .int(let number)?:
            if let minimum, number < minimum {
                issues.add(keyPath(key), "must be at least \(minimum), got \(number)")
                return fallback
            }
            return Int(number)
        case let other?:
            issues.add(keyPath(key), "expected an integer, got \(other.brief)")
            return fallback
        }
    }

    mutating func duration(_ key: String, _ fallback: BerthDuration, minimum: BerthDuration? = nil, allowZero: Bool = true) -> BerthDuration {
        let parsed: BerthDuration
        switch value(key) {
        case nil: return fallback
        case .int(let nanoseconds)? where nanoseconds >= 0: parsed = BerthDuration(nanoseconds: nanoseconds)
        case .string(let text)?:
            guard let duration = DurationFormat.parse(text) else {
                issues.add(keyPath(key), "\"\(text)\" is not a duration (use e.g. 30s, 1m30s, 250ms)")
                return fallback
            }
            parsed = duration
        case let other?:
            issues.add(keyPath(key), "expected a duration such as 30s, got \(other.brief)")
            return fallback
        }
        if let minimum, parsed < minimum, !(allowZero && parsed == .zero) {
            issues.add(keyPath(key), "must be at least \(minimum)\(allowZero ? " (or 0 to disable)" : ""), got \(parsed)")
            return fallback
        }
        return parsed
    }

    /// A list of strings; with `colonSeparated` a single `a:b:c` string is accepted too.
    mutating func strings(_ key: String, _ fallback: [String], colonSeparated: Bool = false) -> [String] {
        switch value(key) {
        case nil: return fallback
        case .string(let text)? where colonSeparated:
            return text.split(separator: ":").map { $0.trimmingCharacters(in: .whitespaces) }
        case .array(let items)?:
            var result: [String] = []
            for (index, item) in items.enumerated() {
                if case .string(let text) = item {
                    result.append(text)
                } else {
                    issues.add("\(keyPath(key))[\(index)]", "expected a string, got \(item.brief)")
                }
            }
            return result
        case let other?:
            issues.add(keyPath(key), "expected a list of strings, got \(other.brief)")
            return fallback
        }
    }

    mutating func choice<Choice: RawRepresentable & CaseIterable>(_ key: String, _ fallback: Choice) -> Choice where Choice.RawValue == String {
        guard let raw = value(key) else { return fallback }
        guard case .string(let text) = raw else {
            issues.add(keyPath(key), "expected one of \(Self.names(Choice.self)), got \(raw.brief)")
            return fallback
        }
        guard let choice = Choice(rawValue: text) else {
            issues.add(keyPath(key), "\"\(text)\" is not one of \(Self.names(Choice.self))")
            return fallback
        }
        return choice
    }

    static func names<Choice: RawRepresentable & CaseIterable>(_: Choice.Type) -> String where Choice.RawValue == String {
        Choice.allCases.map { $0.rawValue.isEmpty ? "\"\"" : $0.rawValue }.joined(separator: ", ")
    }

    mutating func object(_ key: String) -> ObjectReader {
        ObjectReader(value(key), path: keyPath(key), issues: issues)
    }

    /// Reports keys nobody asked for.
    func finish() {
        for (key, _) in fields where !known.contains(key) {
            issues.add(keyPath(key), "unknown key")
        }
    }
}
