import BerthAudit
import BerthCBOR
import BerthConfig
import Foundation

/// The audit directory as the console's recordings page sees it (docs/console.md,
/// "Recordings"): ContainerSSH binary logs (named by connection ID) and asciicast files
/// (`<connection>-<channel>.cast`). Only `storage: file`; S3 objects are not listed.
struct RecordingStore: Sendable {
    let directory: String
    let format: AuditConfig.Format

    init?(audit: AuditConfig) {
        guard audit.isActive, audit.storage == .file else { return nil }
        directory = audit.directory
        format = audit.format
    }

    struct Entry: Codable, Sendable {
        let name: String
        let connection: String
        /// Set for a `.cast` file; a binary log holds every channel of the connection.
        let channel: UInt64?
        let username: String
        let remoteAddress: String
        let modified: Date
        let size: Int
        let kind: String
    }

    /// How much of a binary log is decoded to find the user: the connect and handshake records
    /// come first, and the decoder accepts a log cut short.
    static let headerBytes = 256 * 1024
    /// Refuse to turn a larger log into asciicast in memory.
    static let maxReplayBytes = 256 * 1024 * 1024

    func list(knownUsers: [String: String]) -> [Entry] {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return files.compactMap { name -> Entry? in
            guard let parsed = Self.parse(name) else { return nil }
            let path = "\(directory)/\(name)"
            guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
            var username = knownUsers[parsed.connection] ?? ""
            var remote = ""
            if parsed.channel == nil, let head = Self.head(path) {
                let summary = Self.summary(head)
                if !summary.username.isEmpty { username = summary.username }
                remote = summary.remote
            }
            return Entry(
                name: name, connection: parsed.connection, channel: parsed.channel, username: username, remoteAddress: remote,
                modified: (attributes[.modificationDate] as? Date) ?? Date(timeIntervalSince1970: 0), size: (attributes[.size] as? Int) ?? 0,
                kind: parsed.channel == nil ? "binary" : "asciicast")
        }.sorted { $0.modified > $1.modified }
    }

    /// A name the store may serve: never a path, only the two shapes Berth writes.
    static func parse(_ name: String) -> (connection: String, channel: UInt64?)? {
        func isConnection(_ text: Substring) -> Bool { text.count == 32 && text.allSatisfy { $0.isHexDigit && !$0.isUppercase } }
        if isConnection(name[...]) { return (name, nil) }
        guard name.hasSuffix(".cast") else { return nil }
        let stem = name.dropLast(5)
        guard let dash = stem.lastIndex(of: "-"), isConnection(stem[..<dash]), let channel = UInt64(stem[stem.index(after: dash)...]) else { return nil }
        return (String(stem[..<dash]), channel)
    }

    func original(_ name: String) -> Data? {
        guard Self.parse(name) != nil else { return nil }
        return FileManager.default.contents(atPath: "\(directory)/\(name)")
    }

    /// asciicast v2 text for `name` (and `channel` of a binary log), or why not.
    func asciicast(_ name: String, channel: UInt64?) -> Result<String, RecordingError> {
        guard let parsed = Self.parse(name), let data = original(name) else { return .failure(.notFound) }
        if parsed.channel != nil { return .success(String(decoding: data, as: UTF8.self)) }
        do {
            let messages = try AuditDecoder.decode(Array(data), maxBytes: Self.maxReplayBytes)
            let casts = AuditDecoder.asciicasts(messages)
            guard let cast = channel.map({ wanted in casts.first { $0.channel == wanted } }) ?? casts.first else { return .failure(.noSession) }
            return .success(cast.text)
        } catch {
            return .failure(.undecodable("\(error)"))
        }
    }

    /// Channels with a program in a binary log, for the replay page's choice.
    func channels(_ name: String) -> [UInt64] {
        guard let parsed = Self.parse(name), parsed.channel == nil, let data = original(name),
            let messages = try? AuditDecoder.decode(Array(data), maxBytes: Self.maxReplayBytes)
        else { return [] }
        return AuditDecoder.asciicasts(messages).map(\.channel)
    }

    private static func head(_ path: String) -> [UInt8]? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        return (try? handle.read(upToCount: headerBytes)).map { Array($0) }
    }

    static func summary(_ head: [UInt8]) -> (username: String, remote: String) {
        guard let messages = try? AuditDecoder.decode(head, maxBytes: 16 * headerBytes) else { return ("", "") }
        var username = ""
        var remote = ""
        for message in messages {
            switch message.type {
            case .connect: remote = text(message.payload, "remoteAddr") ?? remote
            case .handshakeSuccessful: username = text(message.payload, "username") ?? username
            default: break
            }
            if !username.isEmpty { break }
        }
        return (username, remote)
    }

    private static func text(_ payload: CBORValue?, _ key: String) -> String? {
        guard case .map(let pairs)? = payload else { return nil }
        for pair in pairs where pair.key == .text(key) {
            if case .text(let value) = pair.value { return value }
        }
        return nil
    }
}

enum RecordingError: Error {
    case notFound
    case noSession
    case undecodable(String)
}
