import BerthAudit
import BerthCore
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore

/// What the sessions page shows, as JSON.
struct LiveSnapshot: Codable, Equatable {
    struct Session: Codable, Equatable {
        let channel: UInt64
        let program: String
        let started: Date
        let bytesIn: UInt64
        let bytesOut: UInt64
        let watchers: Int
    }

    struct Connection: Codable, Equatable {
        let id: String
        let username: String
        let authenticatedUsername: String
        let authenticated: Bool
        let remoteAddress: String
        let backend: String
        let container: String
        let started: Date
        let sessions: [Session]
    }

    let connections: [Connection]

    static func make(_ registry: LiveSessions) -> LiveSnapshot {
        LiveSnapshot(
            connections: registry.connections.map { connection in
                let summary = connection.summary
                return Connection(
                    id: connection.id.hex, username: summary.username, authenticatedUsername: summary.authenticatedUsername, authenticated: summary.authenticated,
                    remoteAddress: connection.remoteAddress, backend: summary.backend, container: summary.container, started: connection.started,
                    sessions: connection.sessions.map { session in
                        let counts = session.summary
                        return Session(
                            channel: session.channelID, program: counts.program, started: session.started, bytesIn: counts.bytesIn, bytesOut: counts.bytesOut,
                            watchers: counts.watchers)
                    })
            })
    }

    func encoded() -> String {
        (try? JSONCoding.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// A watch socket's text message (watch.js reads `type`); the output itself goes as binary.
struct WatchEvent: Encodable {
    let type: String
    var truncated: Bool?

    var json: String { (try? JSONCoding.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}" }
}

enum ConsoleSockets {
    /// At most this many list updates a second; a busy session changes its counters constantly.
    static let listInterval: Duration = .milliseconds(250)
    /// A watcher further behind than this loses its queue and starts again from this much of the
    /// kept output: a few screens, which is all a terminal shows.
    static let watcherQueueLimit = 256 * 1024
    /// A watcher is sent what arrived at most this often: output is batched into few frames, and
    /// a watcher of a very busy session costs at most `watcherQueueLimit` per tick, whatever the
    /// session writes.
    static let watcherTick: Duration = .milliseconds(50)

    /// Pushes the sessions list whenever it changed. The browser sends nothing that matters;
    /// its frames are read (and dropped) so a close is noticed.
    static func list(registry: LiveSessions, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await _ in inbound.messages(maxSize: 4096) {}
            }
            group.addTask {
                var last: LiveSnapshot?
                for await _ in registry.changes() {
                    let snapshot = LiveSnapshot.make(registry)
                    if snapshot != last {
                        try await outbound.write(.text(snapshot.encoded()))
                        last = snapshot
                    }
                    try await Task.sleep(for: listInterval)
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// Streams one session's output: first what was kept, then each new chunk. Text frames carry
    /// state (`start`, `skipped`, `ended`), binary frames the terminal bytes.
    static func watch(
        server: ConsoleServer, operator session: OperatorSignIn.Session, target: (LiveConnection, LiveSession), inbound: WebSocketInboundStream,
        outbound: WebSocketOutboundWriter
    ) async throws {
        let (connection, live) = target
        let details: Logger.Metadata = ["operator": "\(session.username)", LogKey.connectionID: "\(connection.id.hex)", LogKey.channelID: "\(live.channelID)"]
        guard let (watcher, kept, truncated) = live.watch(pendingLimit: watcherQueueLimit) else {
            try await outbound.write(.text(WatchEvent(type: "ended").json))
            return
        }
        server.logger.log(.notice, "CONSOLE_WATCH_STARTED", "an operator is watching a session", details)
        AuditNotes.consoleWatch(connectionID: connection.id.hex, channel: live.channelID, operator: session.username, started: true)
        if server.config.showWatching { await live.notify("An operator is watching this session.") }
        defer {
            live.unwatch(watcher)
            server.logger.log(.info, "CONSOLE_WATCH_ENDED", "an operator stopped watching a session", details)
            AuditNotes.consoleWatch(connectionID: connection.id.hex, channel: live.channelID, operator: session.username, started: false)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await _ in inbound.messages(maxSize: 4096) {}
            }
            group.addTask {
                try await outbound.write(.text(WatchEvent(type: "start", truncated: truncated).json))
                if !kept.isEmpty { try await outbound.write(.binary(ByteBuffer(bytes: kept))) }
                for await _ in watcher.wakes {
                    switch watcher.take() {
                    case .bytes(let bytes):
                        if !bytes.isEmpty { try await outbound.write(.binary(ByteBuffer(bytes: bytes))) }
                        try await Task.sleep(for: watcherTick)
                    case .skipped:
                        server.logger.log(.info, "CONSOLE_WATCH_SKIPPED", "a watcher fell behind the session's output; it starts again from the kept output", details)
                        let again = live.resync(watcher, tail: watcherQueueLimit)
                        try await outbound.write(.text(WatchEvent(type: "skipped").json))
                        try await outbound.write(.binary(ByteBuffer(bytes: again)))
                        try await Task.sleep(for: watcherTick)
                    }
                }
                // Output that arrived just before the end.
                if case .bytes(let bytes) = watcher.take(), !bytes.isEmpty { try await outbound.write(.binary(ByteBuffer(bytes: bytes))) }
                try await outbound.write(.text(WatchEvent(type: "ended").json))
            }
            try await group.next()
            group.cancelAll()
        }
    }
}
