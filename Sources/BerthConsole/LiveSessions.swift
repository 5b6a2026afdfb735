import BerthCore
import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// The live registry behind the console's sessions page (docs/console.md): every connection the
/// console layer has seen, and each of its session channels with the output kept for watchers.
public final class LiveSessions: Sendable {
    private struct State {
        var connections: [ConnectionID: LiveConnection] = [:]
        var order: [ConnectionID] = []
        var listeners: [UInt64: AsyncStream<Void>.Continuation] = [:]
        var nextListener: UInt64 = 0
        /// Users of recent connections, for recordings whose file does not name them.
        var recentUsers: [String: String] = [:]
        var recentOrder: [String] = []
    }

    private let state = NIOLockedValueBox(State())
    /// Output kept per session for a watcher who arrives late (the most recent bytes).
    let outputLimit: Int

    public init(outputLimit: Int = 1 << 20) {
        self.outputLimit = outputLimit
    }

    func add(_ connection: LiveConnection) {
        state.withLockedValue {
            $0.connections[connection.id] = connection
            $0.order.append(connection.id)
        }
        changed()
    }

    func remove(_ connection: LiveConnection) {
        let user = connection.summary.authenticatedUsername
        state.withLockedValue { state in
            state.connections[connection.id] = nil
            state.order.removeAll { $0 == connection.id }
            guard !user.isEmpty else { return }
            state.recentUsers[connection.id.hex] = user
            state.recentOrder.append(connection.id.hex)
            if state.recentOrder.count > 10_000 { state.recentUsers[state.recentOrder.removeFirst()] = nil }
        }
        changed()
    }

    var recentUsers: [String: String] {
        state.withLockedValue { state in
            var users = state.recentUsers
            for connection in state.connections.values { users[connection.id.hex] = connection.summary.authenticatedUsername }
            return users
        }
    }

    /// The console stops: list streams end so their WebSockets close.
    func closeListeners() {
        for listener in state.withLockedValue({ Array($0.listeners.values) }) { listener.finish() }
    }

    public var connections: [LiveConnection] {
        state.withLockedValue { state in state.order.compactMap { state.connections[$0] } }
    }

    public func connection(_ id: String) -> LiveConnection? {
        guard let id = ConnectionID(hex: id) else { return nil }
        return state.withLockedValue { $0.connections[id] }
    }

    public func session(connection: String, channel: UInt64) -> LiveSession? {
        self.connection(connection)?.session(channel)
    }

    /// Wakes every listener (at most one pending wake each, so a busy session never queues).
    func changed() {
        for listener in state.withLockedValue({ Array($0.listeners.values) }) { listener.yield() }
    }

    /// A stream that yields whenever the list may have changed, until the caller stops iterating.
    func changes() -> AsyncStream<Void> {
        let (stream, continuation) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let key = state.withLockedValue { state in
            defer { state.nextListener += 1 }
            state.listeners[state.nextListener] = continuation
            return state.nextListener
        }
        continuation.onTermination = { [weak self] _ in self?.state.withLockedValue { _ = $0.listeners.removeValue(forKey: key) } }
        continuation.yield()
        return stream
    }
}

/// One TCP connection, from the console layer's point of view.
public final class LiveConnection: Sendable {
    public let id: ConnectionID
    public let remoteAddress: String
    public let started: Date
    private struct State {
        var username = ""
        var authenticatedUsername = ""
        var backend = ""
        var container = ""
        var authenticated = false
        var sessions: [UInt64: LiveSession] = [:]
        var disconnect: (@Sendable (String) -> Void)?
    }

    private let state = NIOLockedValueBox(State())
    let registry: LiveSessions

    init(metadata: ConnectionMetadata, registry: LiveSessions) {
        id = metadata.connectionID
        remoteAddress = metadata.remoteAddress.description
        started = Date()
        self.registry = registry
    }

    func authenticated(_ metadata: ConnectionMetadata, placement: ConnectionPlacement, disconnect: (@Sendable (String) -> Void)?) {
        state.withLockedValue {
            $0.username = metadata.username
            $0.authenticatedUsername = metadata.effectiveUsername
            $0.backend = placement.backend
            $0.container = placement.container
            $0.authenticated = true
            $0.disconnect = disconnect
        }
        registry.changed()
    }

    func attempted(username: String) {
        state.withLockedValue { $0.username = username }
        registry.changed()
    }

    func add(_ session: LiveSession) {
        state.withLockedValue { $0.sessions[session.channelID] = session }
        registry.changed()
    }

    func remove(_ session: LiveSession) {
        state.withLockedValue { _ = $0.sessions.removeValue(forKey: session.channelID) }
        registry.changed()
    }

    public func session(_ channel: UInt64) -> LiveSession? { state.withLockedValue { $0.sessions[channel] } }
    public var sessions: [LiveSession] { state.withLockedValue { $0.sessions.values.sorted { $0.channelID < $1.channelID } } }

    public var summary: (username: String, authenticatedUsername: String, backend: String, container: String, authenticated: Bool) {
        state.withLockedValue { ($0.username, $0.authenticatedUsername, $0.backend, $0.container, $0.authenticated) }
    }

    /// Ends the connection with `reason` shown by the client; false before authentication (the
    /// front end's own limits end those).
    func end(reason: String) -> Bool {
        guard let disconnect = state.withLockedValue({ $0.disconnect }) else { return false }
        disconnect("ended by an operator: \(reason)")
        return true
    }
}

/// One session channel: counters, the program, the bounded output buffer and its watchers.
public final class LiveSession: Sendable {
    public let channelID: UInt64
    public let started: Date
    let channel: any SessionChannel
    private struct State {
        var program = ""
        var bytesIn: UInt64 = 0
        var output: OutputRing
        var watchers: [UInt64: Watcher] = [:]
        var nextWatcher: UInt64 = 0
        var ended = false
    }

    private let state: NIOLockedValueBox<State>
    private let onChange: @Sendable () -> Void

    init(channel: any SessionChannel, limit: Int, onChange: @escaping @Sendable () -> Void) {
        self.channelID = channel.channelID
        self.channel = channel
        self.started = Date()
        self.onChange = onChange
        state = NIOLockedValueBox(State(output: OutputRing(capacity: limit)))
    }

    public var summary: (program: String, bytesIn: UInt64, bytesOut: UInt64, watchers: Int) {
        state.withLockedValue { ($0.program, $0.bytesIn, $0.output.total, $0.watchers.count) }
    }

    func setProgram(_ program: String) {
        state.withLockedValue { $0.program = program }
        onChange()
    }

    func input(_ count: Int) {
        state.withLockedValue { $0.bytesIn += UInt64(count) }
        onChange()
    }

    /// Called on the user's output path: copies the bytes and returns, whatever the watchers do.
    func output(_ data: ByteBuffer) {
        data.withUnsafeReadableBytes { bytes in
            state.withLockedValue { state in
                state.output.append(bytes)
                for watcher in state.watchers.values { watcher.offer(bytes) }
            }
        }
        onChange()
    }

    /// Registers a watcher and returns it with the output so far; nil once the session ended.
    func watch(pendingLimit: Int) -> (Watcher, [UInt8], Bool)? {
        let result = state.withLockedValue { state -> (Watcher, [UInt8], Bool)? in
            guard !state.ended else { return nil }
            let watcher = Watcher(id: state.nextWatcher, limit: pendingLimit)
            state.nextWatcher += 1
            state.watchers[watcher.id] = watcher
            return (watcher, state.output.suffix(), state.output.truncated)
        }
        onChange()
        return result
    }

    /// The end of the kept output again, for a watcher that fell behind.
    func resync(_ watcher: Watcher, tail: Int) -> [UInt8] {
        state.withLockedValue { state in
            watcher.clear()
            return state.output.suffix(tail)
        }
    }

    func unwatch(_ watcher: Watcher) {
        state.withLockedValue { _ = $0.watchers.removeValue(forKey: watcher.id) }
        watcher.finish()
        onChange()
    }

    func ended() {
        let watchers = state.withLockedValue { state in
            state.ended = true
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.finish() }
    }

    /// Ends the session: the user sees `reason` on the terminal, then the channel closes.
    func end(reason: String) async {
        var line = ByteBuffer()
        line.writeString("\r\n[berth] An operator ended this session: \(reason)\r\n")
        try? await channel.writeStderr(line)
        await channel.sendExitStatus(255)
        await channel.close()
    }

    func notify(_ text: String) async {
        var line = ByteBuffer()
        line.writeString("\r\n[berth] \(text)\r\n")
        try? await channel.writeStderr(line)
    }
}

/// A watcher's queue: filled on the user's output path without ever waiting. A watcher more than
/// `limit` bytes behind loses its queue and is resynchronised from the session's kept output.
final class Watcher: Sendable {
    let id: UInt64
    private let limit: Int
    private struct State {
        var pending: [UInt8] = []
        var skipped = false
    }

    private let state = NIOLockedValueBox(State())
    let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation

    init(id: UInt64, limit: Int) {
        self.id = id
        self.limit = limit
        (wakes, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    func offer(_ bytes: UnsafeRawBufferPointer) {
        state.withLockedValue { state in
            if state.skipped { return }
            if state.pending.count + bytes.count > limit {
                state.pending = []
                state.skipped = true
            } else {
                state.pending.append(contentsOf: bytes)
            }
        }
        wake.yield()
    }

    enum Next {
        case bytes([UInt8])
        case skipped
    }

    func take() -> Next {
        state.withLockedValue { state in
            if state.skipped { return .skipped }
            defer { state.pending = [] }
            return .bytes(state.pending)
        }
    }

    func clear() { state.withLockedValue { $0 = State() } }
    func finish() { wake.finish() }
}
