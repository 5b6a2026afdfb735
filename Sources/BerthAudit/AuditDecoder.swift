import BerthCBOR
import BerthConfig
import Foundation

/// Reads binary audit logs (docs/configuration.md, "audit"): ours and ContainerSSH's. Tolerates a missing gzip
/// trailer and a log cut short mid-message (a crash); everything complete is returned.
public enum AuditDecoder {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// How much a log may decompress to unless the caller says otherwise.
    public static let defaultMaxBytes = 1 << 30

    /// `maxBytes` bounds the decompressed log: the file may come from anywhere.
    public static func decode(_ bytes: [UInt8], maxBytes: Int = defaultMaxBytes) throws -> [AuditMessage] {
        guard bytes.count >= 40 else { throw Failure(description: "too short for an audit log (\(bytes.count) bytes)") }
        let magic = String(decoding: bytes[0..<32].prefix { $0 != 0 }, as: UTF8.self)
        guard magic == BinaryAuditFormat.magic else { throw Failure(description: "not an audit log (magic is \(magic.debugDescription))") }
        let version = bytes[32..<40].reversed().reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
        guard version == 2 else { throw Failure(description: "audit log version \(version) is not supported (only 2)") }
        let cbor: [UInt8]
        do {
            cbor = try GzipReader.decompress(Array(bytes[40...]), limit: maxBytes)
        } catch {
            throw Failure(description: "\(error)")
        }
        var decoder = CBORDecoder(cbor)
        var messages: [AuditMessage] = []
        while !decoder.isAtEnd {
            let value: CBORValue
            do {
                value = try decoder.next()
            } catch CBORError.truncated {
                break
            } catch {
                throw Failure(description: "message \(messages.count + 1): \(error)")
            }
            messages.append(try message(value, index: messages.count + 1))
        }
        return messages
    }

    private static func message(_ value: CBORValue, index: Int) throws -> AuditMessage {
        guard case .text(let connection)? = value["connectionId"], let timestamp = value["timestamp"]?.intValue,
            let rawType = value["type"]?.intValue
        else {
            throw Failure(description: "message \(index) lacks connectionId, timestamp or type")
        }
        guard let type = AuditMessageType(rawValue: rawType) else { throw Failure(description: "message \(index) has unknown type \(rawType)") }
        var channel: UInt64?
        if case .unsigned(let id)? = value["channelId"] { channel = id }
        var payload = value["payload"]
        if payload == .null { payload = nil }
        return AuditMessage(connectionID: connection, timestamp: timestamp, type: type, payload: payload, channelID: channel)
    }

    /// One JSON object per message; byte strings as base64, plus `typeName` for people.
    public static func jsonLine(_ message: AuditMessage) -> String {
        let line = ConfigValue.object([
            ("connectionId", .string(message.connectionID)), ("timestamp", .int(message.timestamp)), ("type", .int(message.type.rawValue)),
            ("typeName", .string(message.type.name)), ("payload", message.payload.map(json) ?? .null), ("channelId", message.channelID.map(number) ?? .null),
        ])
        return ConfigRenderer.compactJSON(line, sortedKeys: true)
    }

    /// Above 2^63 − 1 (never written by Berth or ContainerSSH) only as a double: the tree holds Int64.
    private static func number(_ value: UInt64) -> ConfigValue {
        value <= UInt64(Int64.max) ? .int(Int64(value)) : .double(Double(value))
    }

    private static func json(_ value: CBORValue) -> ConfigValue {
        switch value {
        case .unsigned(let unsigned): return number(unsigned)
        case .negative: return .int(value.intValue ?? 0)
        case .bytes(let bytes): return .string(Data(bytes).base64EncodedString())
        case .text(let text): return .string(text)
        case .array(let items): return .array(items.map(json))
        case .map(let pairs):
            // Text keys only; a repeated key keeps its last value.
            var fields: [String: ConfigValue] = [:]
            for pair in pairs {
                if case .text(let key) = pair.key { fields[key] = json(pair.value) }
            }
            return .object(fields.map { ($0.key, $0.value) })
        case .tagged(_, let inner): return json(inner)
        case .bool(let flag): return .bool(flag)
        case .null, .undefined: return .null
        case .double(let number): return .number(number)
        }
    }

    /// The sessions of a binary log as asciicast v2 recordings, one per session channel.
    public static func asciicasts(_ messages: [AuditMessage]) -> [(channel: UInt64, text: String)] {
        let encoder = AsciinemaAuditEncoder(connectionID: "")
        var casts: [UInt64: [UInt8]] = [:]
        var order: [UInt64] = []
        for message in messages {
            for (_, bytes) in encoder.encode(message) {
                guard let channel = message.channelID else { continue }
                if casts[channel] == nil { order.append(channel) }
                casts[channel, default: []] += bytes
            }
        }
        return order.map { ($0, String(decoding: casts[$0]!, as: UTF8.self)) }
    }
}
