/// A CBOR data item (RFC 8949). Berth needs CBOR for the agent's forwarding protocol and the
/// binary audit log; no package in the mirror provides it, so this small codec is the
/// project's own. Standard library only, so the static agent can use it too.
public indirect enum CBORValue: Hashable, Sendable {
    case unsigned(UInt64)
    /// The value is `-1 - n`.
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBORValue])
    /// Keys keep their order; ContainerSSH readers do not care, but tests can.
    case map([CBORPair])
    case tagged(UInt64, CBORValue)
    case bool(Bool)
    case null
    case undefined
    case double(Double)

    public static func int(_ value: Int64) -> CBORValue {
        value >= 0 ? .unsigned(UInt64(value)) : .negative(UInt64(-1 - value))
    }

    /// The value for a text key in a map.
    public subscript(key: String) -> CBORValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.key == .text(key) }?.value
    }

    public var intValue: Int64? {
        switch self {
        case .unsigned(let value) where value <= UInt64(Int64.max): return Int64(value)
        case .negative(let value) where value < UInt64(Int64.max): return -1 - Int64(value)
        default: return nil
        }
    }
}

public struct CBORPair: Hashable, Sendable {
    public var key: CBORValue
    public var value: CBORValue

    public init(_ key: CBORValue, _ value: CBORValue) {
        self.key = key
        self.value = value
    }
}
