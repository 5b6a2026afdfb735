import BerthAudit
import BerthCBOR
import BerthConfig
import Foundation
import NIOConcurrencyHelpers
import NIOPosix

/// The audit storage as the console's recordings page sees it (docs/console.md,
/// "Recordings"): ContainerSSH binary logs (named by connection ID) and asciicast files
/// (`<connection>-<channel>.cast`), in the audit directory or in the S3 bucket.
final class RecordingStore: Sendable {
    enum Source: Sendable {
        case directory(String)
        case s3(AuditS3Reader)
    }

    let source: Source
    let format: AuditConfig.Format
    /// What the first bytes of each S3 binary log said, by key and ETag: uploaded objects do
    /// not change, so each is read once.
    private let summaries = NIOLockedValueBox<[String: (etag: String, username: String, remote: String)]>([:])

    init?(audit: AuditConfig) throws {
        guard audit.isActive else { return nil }
        switch audit.storage {
        case .file: source = .directory(audit.directory)
        case .s3: source = .s3(try AuditS3Reader(config: audit.s3))
        default: return nil
        }
        format = audit.format
    }

    func shutdown() async {
        if case .s3(let reader) = source { await reader.shutdown() }
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
    /// A bucket may hold more; the page lists this many.
    static let maxS3Objects = 10_000
    static let maxCachedSummaries = 20_000

    /// File reads and log decoding run on NIO's thread pool, off the tasks that serve sessions.
    static func offloaded<T: Sendable>(_ work: @escaping @Sendable () -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    func list(knownUsers: [String: String]) async throws -> [Entry] {
        switch source {
        case .directory(let directory): return try await Self.offloaded { Self.listDirectory(directory, knownUsers: knownUsers) }
        case .s3(let reader): return try await listBucket(reader, knownUsers: knownUsers)
        }
    }

    private static func listDirectory(_ directory: String, knownUsers: [String: String]) -> [Entry] {
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

    /// Keys Berth did not write are left out, as in a directory; a binary log's user comes from
    /// a ranged GET of its first bytes, once per object.
    private func listBucket(_ reader: AuditS3Reader, knownUsers: [String: String]) async throws -> [Entry] {
        var entries: [Entry] = []
        for object in try await reader.list(maxObjects: Self.maxS3Objects).objects {
            guard let parsed = Self.parse(object.key) else { continue }
            var username = knownUsers[parsed.connection] ?? ""
            var remote = ""
            if parsed.channel == nil {
                let known = summaries.withLockedValue { $0[object.key] }.flatMap { $0.etag == object.etag ? $0 : nil }
                var summary = known.map { (username: $0.username, remote: $0.remote) }
                if summary == nil, let head = try await reader.get(object.key, firstBytes: Self.headerBytes, limit: Self.headerBytes) {
                    let read = try await Self.offloaded { Self.summary(head) }
                    summaries.withLockedValue { table in
                        if table.count >= Self.maxCachedSummaries { table.removeAll() }
                        table[object.key] = (object.etag, read.username, read.remote)
                    }
                    summary = read
                }
                if let summary, !summary.username.isEmpty { username = summary.username }
                remote = summary?.remote ?? ""
            }
            entries.append(
                Entry(
                    name: object.key, connection: parsed.connection, channel: parsed.channel, username: username, remoteAddress: remote,
                    modified: object.modified, size: object.size, kind: parsed.channel == nil ? "binary" : "asciicast"))
        }
        return entries.sorted { $0.modified > $1.modified }
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

    func original(_ name: String) async throws -> [UInt8]? {
        guard Self.parse(name) != nil else { return nil }
        switch source {
        case .directory(let directory):
            let path = "\(directory)/\(name)"
            return try await Self.offloaded { FileManager.default.contents(atPath: path).map { Array($0) } }
        case .s3(let reader):
            return try await reader.get(name, limit: Self.maxReplayBytes)
        }
    }

    /// asciicast v2 text for `name` (and `channel` of a binary log), or why not.
    func asciicast(_ name: String, channel: UInt64?) async throws -> Result<String, RecordingError> {
        guard let parsed = Self.parse(name), let data = try await original(name) else { return .failure(.notFound) }
        if parsed.channel != nil { return .success(String(decoding: data, as: UTF8.self)) }
        return try await Self.offloaded {
            do {
                let messages = try AuditDecoder.decode(data, maxBytes: Self.maxReplayBytes)
                let casts = AuditDecoder.asciicasts(messages)
                guard let cast = channel.map({ wanted in casts.first { $0.channel == wanted } }) ?? casts.first else { return .failure(.noSession) }
                return .success(cast.text)
            } catch {
                return .failure(.undecodable("\(error)"))
            }
        }
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
