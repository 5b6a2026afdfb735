/// Why input is not CBOR that Berth accepts. Untrusted peers send it, so every problem is an
/// error, never a crash.
public enum CBORError: Error, Equatable, Sendable {
    /// The input ends inside a data item; more bytes may complete it.
    case truncated
    case invalid(String)
    case tooDeep
}

/// Decodes a sequence of data items (a CBOR sequence, RFC 8742) from bytes.
public struct CBORDecoder {
    /// Deeper nesting than this is refused so hostile input cannot exhaust the stack.
    public static let maximumDepth = 64

    private let bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    /// Decodes the next item; on `.truncated` the position is unchanged, so a caller can wait
    /// for more input and try again.
    public mutating func next() throws -> CBORValue {
        let start = offset
        do {
            return try item(depth: 0)
        } catch {
            offset = start
            throw error
        }
    }

    public static func decode(_ bytes: [UInt8]) throws -> CBORValue {
        var decoder = CBORDecoder(bytes)
        let value = try decoder.next()
        guard decoder.isAtEnd else { throw CBORError.invalid("\(bytes.count - decoder.offset) bytes after the data item") }
        return value
    }

    private mutating func byte() throws -> UInt8 {
        guard offset < bytes.count else { throw CBORError.truncated }
        defer { offset += 1 }
        return bytes[offset]
    }

    private mutating func take(_ count: UInt64) throws -> ArraySlice<UInt8> {
        guard count <= UInt64(bytes.count - offset) else { throw CBORError.truncated }
        defer { offset += Int(count) }
        return bytes[offset..<(offset + Int(count))]
    }

    private mutating func argument(_ info: UInt8) throws -> UInt64? {
        switch info {
        case 0..<24: return UInt64(info)
        case 24...27:
            let width = 1 << Int(info - 24)
            return try take(UInt64(width)).reduce(0) { ($0 << 8) | UInt64($1) }
        case 31: return nil
        default: throw CBORError.invalid("reserved additional information \(info)")
        }
    }

    private mutating func item(depth: Int) throws -> CBORValue {
        guard depth <= Self.maximumDepth else { throw CBORError.tooDeep }
        let initial = try byte()
        let major = initial >> 5
        let info = initial & 0x1F
        if major == 7 { return try simple(info) }
        let argument = try argument(info)
        switch major {
        case 0:
            guard let argument else { throw CBORError.invalid("indefinite integer") }
            return .unsigned(argument)
        case 1:
            guard let argument else { throw CBORError.invalid("indefinite integer") }
            return .negative(argument)
        case 2:
            return .bytes(try string(major: 2, length: argument))
        case 3:
            let utf8 = try string(major: 3, length: argument)
            guard let text = String(validating: utf8, as: UTF8.self) else { throw CBORError.invalid("text is not UTF-8") }
            return .text(text)
        case 4:
            var items: [CBORValue] = []
            if let count = argument {
                guard count <= UInt64(bytes.count - offset) else { throw CBORError.truncated }
                for _ in 0..<count { items.append(try item(depth: depth + 1)) }
            } else {
                while try !atBreak() { items.append(try item(depth: depth + 1)) }
            }
            return .array(items)
        case 5:
            var pairs: [CBORPair] = []
            if let count = argument {
                guard count <= UInt64(bytes.count - offset) else { throw CBORError.truncated }
                for _ in 0..<count { pairs.append(CBORPair(try item(depth: depth + 1), try item(depth: depth + 1))) }
            } else {
                while try !atBreak() { pairs.append(CBORPair(try item(depth: depth + 1), try item(depth: depth + 1))) }
            }
            return .map(pairs)
        default:
            guard let argument else { throw CBORError.invalid("indefinite tag") }
            return .tagged(argument, try item(depth: depth + 1))
        }
    }

    /// Definite strings, or indefinite ones made of definite chunks of the same major type.
    private mutating func string(major: UInt8, length: UInt64?) throws -> [UInt8] {
        if let length { return Array(try take(length)) }
        var result: [UInt8] = []
        while try !atBreak() {
            let initial = try byte()
            guard initial >> 5 == major, let chunk = try argument(initial & 0x1F) else {
                throw CBORError.invalid("bad chunk in an indefinite-length string")
            }
            result += try take(chunk)
        }
        return result
    }

    private mutating func atBreak() throws -> Bool {
        guard offset < bytes.count else { throw CBORError.truncated }
        if bytes[offset] == 0xFF {
            offset += 1
            return true
        }
        return false
    }

    private mutating func simple(_ info: UInt8) throws -> CBORValue {
        switch info {
        case 20: return .bool(false)
        case 21: return .bool(true)
        case 22: return .null
        case 23: return .undefined
        case 25:
            let bits = try take(2).reduce(UInt16(0)) { ($0 << 8) | UInt16($1) }
            return .double(Double(Float16Bits.decode(bits)))
        case 26:
            let bits = try take(4).reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
            return .double(Double(Float(bitPattern: bits)))
        case 27:
            let bits = try take(8).reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
            return .double(Double(bitPattern: bits))
        case 0..<20: return .unsigned(UInt64(info))  // unassigned simple values, kept as numbers
        default: throw CBORError.invalid("unsupported simple value \(info)")
        }
    }
}

/// Half-precision floats without relying on Float16 (not available on every platform).
enum Float16Bits {
    static func decode(_ bits: UInt16) -> Float {
        let sign: Float = bits & 0x8000 != 0 ? -1 : 1
        let exponent = Int((bits >> 10) & 0x1F)
        let fraction = Float(bits & 0x3FF)
        switch exponent {
        case 0: return sign * fraction * Float(pow2(-24))
        case 31: return fraction == 0 ? sign * .infinity : .nan
        default: return sign * (1 + fraction / 1024) * Float(pow2(exponent - 15))
        }
    }

    private static func pow2(_ exponent: Int) -> Double {
        exponent >= 0 ? Double(1 << exponent) : 1 / Double(1 << -exponent)
    }
}
