import Foundation

/// JSON text of a `ConfigValue` tree: the one writer for free-form JSON (docs/architecture.md,
/// "JSON"). Escapes what JSON requires (`"`, `\`, C0 controls, with the short forms `\b \f \n
/// \r \t`); everything else, `/` and non-ASCII included, is written as it is.
extension ConfigRenderer {
    /// Compact JSON for request bodies (Engine API objects, webhook payloads) and for the audit
    /// and log formats. `sortedKeys` orders every object's keys as those formats always have
    /// (`JSONKeyOrder`); otherwise the tree's order is kept.
    public static func compactJSON(_ value: ConfigValue) -> String { compactJSON(value, sortedKeys: false) }

    public static func compactJSON(_ value: ConfigValue, sortedKeys: Bool) -> String {
        var writer = JSONTextWriter(sortedKeys: sortedKeys)
        writer.write(value)
        return String(decoding: writer.bytes, as: UTF8.self)
    }

    static func jsonString(_ text: String) -> String {
        var writer = JSONTextWriter(sortedKeys: false)
        writer.write(string: text)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

extension ConfigValue {
    /// A double as JSON writers print it (Foundation's, jq): a whole number below 2^53 without a
    /// fraction, so formats that always printed `1` for 1.0 still do; NaN and infinity, which
    /// JSON lacks, as null. Config trees keep `.double` (`1.0`), which reads back as a double.
    public static func number(_ value: Double) -> ConfigValue {
        guard value.isFinite else { return .null }
        if value == value.rounded(), abs(value) < 9_007_199_254_740_992, value.sign == .plus || value != 0 { return .int(Int64(value)) }
        return .double(value)
    }
}

struct JSONTextWriter {
    private(set) var bytes: [UInt8] = []
    let sortedKeys: Bool

    init(sortedKeys: Bool) {
        self.sortedKeys = sortedKeys
        bytes.reserveCapacity(256)
    }

    mutating func write(_ value: ConfigValue) {
        switch value {
        case .null: bytes += "null".utf8
        case .bool(let flag): bytes += (flag ? "true" : "false").utf8
        case .int(let number): bytes += String(number).utf8
        // JSON has no NaN or infinity (a plain `1e999` in YAML reads as infinity).
        case .double(let number): bytes += (number.isFinite ? String(number) : "null").utf8
        case .string(let text): write(string: text)
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                write(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let fields):
            bytes.append(UInt8(ascii: "{"))
            let ordered = sortedKeys && fields.count > 1 ? fields.sorted { JSONKeyOrder.precedes($0.key, $1.key) } : fields
            for (index, field) in ordered.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                write(string: field.key)
                bytes.append(UInt8(ascii: ":"))
                write(field.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    /// Byte-wise: every byte of a multi-byte UTF-8 sequence is 0x80 or above, so only ASCII
    /// can need an escape and runs between escapes are copied whole.
    mutating func write(string text: String) {
        bytes.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { utf8 in
            var start = 0
            for index in utf8.indices {
                let byte = utf8[index]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                bytes += utf8[start..<index]
                start = index + 1
                switch byte {
                case UInt8(ascii: "\""): bytes += #"\""#.utf8
                case UInt8(ascii: "\\"): bytes += #"\\"#.utf8
                case 0x08: bytes += #"\b"#.utf8
                case 0x0C: bytes += #"\f"#.utf8
                case 0x0A: bytes += #"\n"#.utf8
                case 0x0D: bytes += #"\r"#.utf8
                case 0x09: bytes += #"\t"#.utf8
                default: bytes += [UInt8(ascii: "\\"), UInt8(ascii: "u"), 0x30, 0x30, Self.hex[Int(byte >> 4)], Self.hex[Int(byte & 0xF)]]
                }
            }
            bytes += utf8[start...]
        }
        bytes.append(UInt8(ascii: "\""))
    }
}

/// The key order of sorted JSON in the audit and log formats: what Foundation's
/// `JSONSerialization` `.sortedKeys` gave (the system locale's collation with numeric runs and
/// case ignored, lower case first on a tie: `_x`, `A_B`, `a2`, `a10`, `AB`, `keyboard`, `keyType`).
/// Not byte order, which the Codable encoder uses; kept so that those formats' bytes never moved.
enum JSONKeyOrder {
    static func precedes(_ a: String, _ b: String) -> Bool {
        if let answer = lettersOnly(a, b) { return answer }
        return a.compare(b, options: [.numeric, .caseInsensitive, .forcedOrdering], range: a.startIndex..<a.endIndex, locale: NSLocale.system as Locale)
            == .orderedAscending
    }

    /// The collation for keys of ASCII letters only (nearly every key), without ICU: letters
    /// compare case-folded, a shorter key first, then the first case difference, lower first.
    /// Nil when a key holds anything else.
    static func lettersOnly(_ a: String, _ b: String) -> Bool? {
        var left = a.utf8.makeIterator()
        var right = b.utf8.makeIterator()
        var tie: Bool?
        while true {
            let x = left.next()
            let y = right.next()
            guard let x else { return y == nil ? tie ?? false : isLetter(y!) ? true : nil }
            guard let y else { return isLetter(x) ? false : nil }
            guard isLetter(x), isLetter(y) else { return nil }
            if x | 0x20 != y | 0x20 { return x | 0x20 < y | 0x20 }
            if tie == nil && x != y { tie = x > y }
        }
    }

    private static func isLetter(_ byte: UInt8) -> Bool { (0x61...0x7A).contains(byte | 0x20) }
}

/// Free-form values inside Codable types (the example webhook's per-user config) and free-form
/// JSON read with the shared decoder (`JSONCoding`): JSON's number kinds as the decoder tells
/// them (a whole number that fits Int64 is `.int`), object keys in byte order (a decoder does
/// not keep the document's).
extension ConfigValue: Decodable {
    private struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer() {
            if single.decodeNil() {
                self = .null
                return
            }
            if let flag = try? single.decode(Bool.self) {
                self = .bool(flag)
                return
            }
            if let number = try? single.decode(Int64.self) {
                self = .int(number)
                return
            }
            if let number = try? single.decode(Double.self) {
                self = .double(number)
                return
            }
            if let text = try? single.decode(String.self) {
                self = .string(text)
                return
            }
        }
        if var list = try? decoder.unkeyedContainer() {
            var items: [ConfigValue] = []
            while !list.isAtEnd { items.append(try list.decode(ConfigValue.self)) }
            self = .array(items)
            return
        }
        let map = try decoder.container(keyedBy: Key.self)
        self = .object(try map.allKeys.sorted { $0.stringValue < $1.stringValue }.map { ($0.stringValue, try map.decode(ConfigValue.self, forKey: $0)) })
    }
}
