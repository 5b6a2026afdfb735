import BerthCBOR
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
        var object: [String: Any] = [
            "connectionId": message.connectionID, "timestamp": message.timestamp, "type": message.type.rawValue,
            "typeName": message.type.name, "payload": message.payload.map(json) ?? NSNull(),
            "channelId": message.channelID.map { $0 as Any } ?? NSNull(),
        ]
        if message.payload == nil { object["payload"] = NSNull() }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    private static func json(_ value: CBORValue) -> Any {
        switch value {
        case .unsigned(let number): return number
        case .negative: return value.intValue ?? 0
        case .bytes(let bytes): return Data(bytes).base64EncodedString()
        case .text(let text): return text
        case .array(let items): return items.map(json)
        case .map(let pairs):
            var object: [String: Any] = [:]
            for pair in pairs {
                if case .text(let key) = pair.key { object[key] = json(pair.value) }
            }
            return object
        case .tagged(_, let inner): return json(inner)
        case .bool(let flag): return flag
        case .null, .undefined: return NSNull()
        case .double(let number): return number
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
