import BerthCBOR
import BerthConfig
import Foundation

/// The start of every binary audit log: the magic NUL-padded to 32 bytes, then the format
/// version as uint64 little-endian (40 bytes in all).
public enum BinaryAuditFormat {
    public static let magic = "ContainerSSH-Auditlog"
    public static let version: UInt64 = 2

    public static var header: [UInt8] {
        var bytes = Array(magic.utf8) + [UInt8](repeating: 0, count: 32 - magic.utf8.count)
        for shift in stride(from: 0, to: 64, by: 8) { bytes.append(UInt8((version >> UInt64(shift)) & 0xFF)) }
        return bytes
    }
}

/// Turns the messages of one connection into the bytes of one or more log objects.
protocol AuditEncoder: AnyObject {
    /// Bytes to append to named objects. Names are relative to the storage (the connection ID,
    /// or for asciinema one `.cast` per session channel).
    func encode(_ message: AuditMessage) -> [(name: String, bytes: [UInt8])]
    /// Final bytes when the connection ends.
    func finish() -> [(name: String, bytes: [UInt8])]
}

/// ContainerSSH's binary format: header, then a gzip stream of CBOR maps, flushed per message.
final class BinaryAuditEncoder: AuditEncoder {
    private let name: String
    private let gzip = GzipWriter()
    private var started = false

    init(connectionID: String) { self.name = connectionID }

    func encode(_ message: AuditMessage) -> [(name: String, bytes: [UInt8])] {
        var bytes: [UInt8] = []
        if !started {
            started = true
            bytes = BinaryAuditFormat.header
        }
        bytes += gzip.write(CBOREncoder.encode(message.cbor()))
        return [(name, bytes)]
    }

    func finish() -> [(name: String, bytes: [UInt8])] {
        [(name, gzip.finish())]
    }
}

/// asciicast v2: one recording per session channel, named `<connection>-<channel>.cast`. The
/// header is written when the program starts (terminal size from the pty request); then output
/// (and, with stdin interception, input) events with seconds since the start.
final class AsciinemaAuditEncoder: AuditEncoder {
    private let connectionID: String
    private var channels: [UInt64: Cast] = [:]

    private struct Cast {
        var width: Int64 = 80
        var height: Int64 = 25
        var term = ""
        var environment: [String: String] = [:]
        var start: Int64?
    }

    init(connectionID: String) { self.connectionID = connectionID }

    private func name(_ channel: UInt64) -> String { "\(connectionID)-\(channel).cast" }

    func encode(_ message: AuditMessage) -> [(name: String, bytes: [UInt8])] {
        guard let channel = message.channelID else { return [] }
        let payload = message.payload
        switch message.type {
        case .newChannelSuccessful:
            if case .text("session")? = payload?["channelType"] { channels[channel] = Cast() }
        case .pty:
            guard var cast = channels[channel] else { return [] }
            cast.width = payload?["columns"]?.intValue ?? cast.width
            cast.height = payload?["rows"]?.intValue ?? cast.height
            if case .text(let term)? = payload?["term"] { cast.term = term }
            channels[channel] = cast
        case .setEnv:
            if case .text(let name)? = payload?["name"], case .text(let value)? = payload?["value"] { channels[channel]?.environment[name] = value }
        case .shell, .exec, .subsystem:
            guard var cast = channels[channel], cast.start == nil else { return [] }
            cast.start = message.timestamp
            channels[channel] = cast
            var command = ""
            if case .text(let program)? = payload?["program"] { command = program }
            if case .text(let subsystem)? = payload?["subsystem"] { command = subsystem }
            var env = cast.environment
            env["TERM"] = cast.term.isEmpty ? nil : cast.term
            env["SHELL"] = env["SHELL"] ?? (message.type == .shell ? "/bin/sh" : nil)
            var header: [(key: String, value: ConfigValue)] = [
                ("version", .int(2)), ("width", .int(cast.width)), ("height", .int(cast.height)),
                ("timestamp", .int(message.timestamp / 1_000_000_000)), ("env", .object(env.map { ($0.key, .string($0.value)) })),
            ]
            if !command.isEmpty { header.append(("command", .string(command))) }
            return [(name(channel), Self.line(.object(header)))]
        case .io:
            guard let start = channels[channel]?.start, case .bytes(let data)? = payload?["data"],
                let stream = payload?["stream"]?.intValue
            else { return [] }
            let seconds = Double(message.timestamp - start) / 1e9
            let event = ConfigValue.array([.number(seconds), .string(stream == 0 ? "i" : "o"), .string(String(decoding: data, as: UTF8.self))])
            return [(name(channel), Self.line(event))]
        case .close:
            channels[channel] = nil
        default:
            break
        }
        return []
    }

    func finish() -> [(name: String, bytes: [UInt8])] { [] }

    /// Sorted keys, as asciicast files have always been written.
    private static func line(_ value: ConfigValue) -> [UInt8] {
        Array(ConfigRenderer.compactJSON(value, sortedKeys: true).utf8) + [0x0A]
    }
}
