import BerthCBOR

/// The agent forwarding protocol (docs/agent-protocol.md, "Forwarding"), shared by Berth and `berth-agent forward-server`:
/// a CBOR sequence of `{Type, ConnectionId, Payload}` maps, compatible with ContainerSSH's agent.
public enum ForwardPacketType: UInt64, Sendable, CaseIterable {
    case setup = 0
    case success = 1
    case error = 2
    case data = 3
    case newConnection = 4
    case closeConnection = 5
    case noMoreConnections = 6
}

public struct ForwardPacket: Sendable, Equatable {
    public var type: ForwardPacketType
    public var connectionID: UInt64
    /// Nested CBOR (setup, new connection, setup reply) or raw bytes (data); nil is CBOR null.
    public var payload: [UInt8]?

    public init(_ type: ForwardPacketType, connectionID: UInt64 = 0, payload: [UInt8]? = nil) {
        self.type = type
        self.connectionID = connectionID
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        CBOREncoder.encode(
            .map([
                CBORPair(.text("Type"), .unsigned(type.rawValue)),
                CBORPair(.text("ConnectionId"), .unsigned(connectionID)),
                CBORPair(.text("Payload"), payload.map { .bytes($0) } ?? .null),
            ]))
    }

    public init(decoding value: CBORValue) throws(ForwardProtocolError) {
        let fields = try ForwardFields(value, "packet")
        let rawType = try fields.unsigned("Type")
        guard let type = ForwardPacketType(rawValue: rawType) else { throw ForwardProtocolError("unknown packet type \(rawType)") }
        self.type = type
        self.connectionID = try fields.unsigned("ConnectionId", default: 0)
        switch fields["Payload"] {
        case nil, .null?, .undefined?: self.payload = nil
        case .bytes(let bytes)?: self.payload = bytes
        default: throw ForwardProtocolError("Payload is not a byte string")
        }
    }
}

public struct ForwardProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Field access on a decoded map with the Go decoder's case-insensitive key match.
struct ForwardFields {
    private let pairs: [(String, CBORValue)]
    private let what: String

    init(_ value: CBORValue, _ what: String) throws(ForwardProtocolError) {
        guard case .map(let pairs) = value else { throw ForwardProtocolError("\(what) is not a CBOR map") }
        self.pairs = pairs.compactMap { pair in
            guard case .text(let key) = pair.key else { return nil }
            return (key.lowercased(), pair.value)
        }
        self.what = what
    }

    subscript(key: String) -> CBORValue? {
        let wanted = key.lowercased()
        return pairs.first { $0.0 == wanted }?.1
    }

    func unsigned(_ key: String, default fallback: UInt64? = nil) throws(ForwardProtocolError) -> UInt64 {
        switch self[key] {
        case .unsigned(let value)?: return value
        case nil, .null?:
            if let fallback { return fallback }
            throw ForwardProtocolError("\(what) has no \(key)")
        default: throw ForwardProtocolError("\(what) field \(key) is not an unsigned integer")
        }
    }

    func text(_ key: String) throws(ForwardProtocolError) -> String {
        switch self[key] {
        case .text(let value)?: return value
        case nil, .null?: return ""
        default: throw ForwardProtocolError("\(what) field \(key) is not a text string")
        }
    }

    func bool(_ key: String) throws(ForwardProtocolError) -> Bool {
        switch self[key] {
        case .bool(let value)?: return value
        case nil, .null?: return false
        default: throw ForwardProtocolError("\(what) field \(key) is not a boolean")
        }
    }
}
