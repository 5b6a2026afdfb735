import BerthCore
import BerthForwardProtocol
import Logging
import NIOConcurrencyHelpers

/// The forwards of one SSH connection (docs/agent-protocol.md, "Forwarding"), for any backend that runs the agent's
/// `forward-server`: one shared forward-server dials for all `direct-tcpip` channels; every
/// `tcpip-forward` gets a forward-server of its own that listens. All of them end with the
/// connection, before its container or pod is removed.
public final class ForwardRegistry: Sendable {
    /// Starts `agent forward-server` in the user's container; the argument names its role for the log.
    public typealias Starter = @Sendable (String) async throws -> ForwardMultiplexer

    private let state = NIOLockedValueBox(State())

    private struct State {
        var dialer: Task<ForwardMultiplexer, Error>?
        /// Keyed by the host and the port the client asked for (and, for port 0, the bound one).
        var listeners: [ReverseForward: ForwardMultiplexer] = [:]
        /// `streamlocal-forward` listeners, keyed by the socket path.
        var socketListeners: [String: ForwardMultiplexer] = [:]
        /// A session's X11 and agent listeners; they end with their session or the connection.
        var sessionListeners: [ObjectIdentifier: ForwardMultiplexer] = [:]
        var closed = false
    }

    public init() {}

    /// A `direct-tcpip` channel; `problem` says why forwarding cannot work here, if it cannot.
    public func direct(_ request: DirectForward, channel: any ForwardChannel, problem: String?, logger: Logger, start: @escaping Starter) async throws {
        let target = ForwardNewConnection(
            protocolName: "tcp", connectedAddress: request.host, connectedPort: UInt64(request.port),
            originatorAddress: request.originatorHost, originatorPort: UInt64(request.originatorPort))
        try await dial(target, shown: "\(request.host):\(request.port)", channel: channel, problem: problem, logger: logger, start: start)
    }

    /// A `direct-streamlocal@openssh.com` channel: the same dialling forward-server connects to the
    /// socket (as ContainerSSH does: a dial with protocol `unix`).
    public func directSocket(path: String, channel: any ForwardChannel, problem: String?, logger: Logger, start: @escaping Starter) async throws {
        let target = ForwardNewConnection(protocolName: "unix", connectedAddress: path, connectedPort: 0)
        try await dial(target, shown: path, channel: channel, problem: problem, logger: logger, start: start)
    }

    private func dial(
        _ target: ForwardNewConnection, shown: String, channel: any ForwardChannel, problem: String?, logger: Logger, start: @escaping Starter
    ) async throws {
        if let problem { throw ChannelRejection(.administrativelyProhibited, problem) }
        let dialer: ForwardMultiplexer
        do {
            dialer = try await self.dialer {
                let multiplexer = try await start("dial")
                _ = try await multiplexer.setup(ForwardSetup(.portDial))
                return multiplexer
            }
        } catch {
            logger.log(.warning, "FORWARD_SERVER_FAILED", "cannot start the forward-server: \(error)")
            // The client sees the description; the engine's text stays in the log.
            throw ChannelRejection(.connectFailed, "port forwarding is not available (FORWARD_SERVER_FAILED)")
        }
        do {
            try await dialer.dial(target, channel: channel)
        } catch {
            logger.log(.info, "FORWARD_CONNECT_FAILED", "cannot connect to \(shown) in the container: \(error)")
            throw ChannelRejection(.connectFailed, "\(error)")
        }
    }

    /// A `tcpip-forward` request; returns the port the agent bound.
    public func reverse(_ forward: ReverseForward, opener: any ForwardedChannelOpener, problem: String?, logger: Logger, start: Starter) async throws -> UInt32 {
        if let problem { throw RequestRefused("FORWARDING_UNAVAILABLE", problem) }
        guard !hasListener(forward) else { throw RequestRefused("FORWARD_EXISTS", "\(forward) is already forwarded") }
        let multiplexer = try await start("listen \(forward)")
        let bound = BoundPort()
        let port: UInt64
        do {
            port = try await multiplexer.setup(ForwardSetup(.portForward, bindHost: forward.host, bindPort: UInt64(forward.port))) { offer in
                let listening = ReverseForward(host: forward.host, port: bound.value)
                return try await opener.openForwardedChannel(listening, originatorHost: offer.originatorAddress, originatorPort: UInt32(clamping: offer.originatorPort))
            }
        } catch {
            await multiplexer.shutdown()
            logger.log(.info, "FORWARD_LISTEN_FAILED", "cannot listen on \(forward) in the container: \(error)")
            throw RequestRefused("FORWARD_LISTEN_FAILED", "cannot listen on \(forward): \(error)")
        }
        // The client reports connections under the port it asked for; for port 0 that is the bound one.
        bound.value = forward.port == 0 ? UInt32(clamping: port) : forward.port
        let keys = Set([forward, ReverseForward(host: forward.host, port: UInt32(clamping: port))])
        guard addListener(multiplexer, for: Array(keys)) else {
            await multiplexer.shutdown()
            throw RequestRefused("FORWARD_EXISTS", "\(forward) is already forwarded")
        }
        return UInt32(clamping: port)
    }

    /// `cancel-tcpip-forward`: open connections finish; the agent exits after the last one.
    public func cancel(_ forward: ReverseForward) async throws {
        guard let multiplexer = removeListener(forward) else {
            throw RequestRefused("FORWARD_UNKNOWN", "\(forward) is not forwarded")
        }
        await multiplexer.stopAccepting()
    }

    /// A `streamlocal-forward@openssh.com` request: a forward-server of its own listens on `path`.
    public func reverseSocket(path: String, opener: any ClientChannelOpener, problem: String?, logger: Logger, start: Starter) async throws {
        if let problem { throw RequestRefused("FORWARDING_UNAVAILABLE", problem) }
        guard state.withLockedValue({ $0.socketListeners[path] == nil }) else { throw RequestRefused("FORWARD_EXISTS", "\(path) is already forwarded") }
        let multiplexer = try await start("listen \(path)")
        do {
            _ = try await multiplexer.setup(ForwardSetup(.socketForward, bindHost: path, protocolName: "unix")) { _ in
                try await opener.openForwardedStreamLocal(path: path)
            }
        } catch {
            await multiplexer.shutdown()
            logger.log(.info, "FORWARD_LISTEN_FAILED", "cannot listen on \(path) in the container: \(error)")
            throw RequestRefused("FORWARD_LISTEN_FAILED", "cannot listen on \(path): \(error)")
        }
        let added = state.withLockedValue { state -> Bool in
            guard !state.closed, state.socketListeners[path] == nil else { return false }
            state.socketListeners[path] = multiplexer
            return true
        }
        guard added else {
            await multiplexer.shutdown()
            throw RequestRefused("FORWARD_EXISTS", "\(path) is already forwarded")
        }
    }

    /// `cancel-streamlocal-forward@openssh.com`: as `cancel`.
    public func cancelSocket(path: String) async throws {
        guard let multiplexer = state.withLockedValue({ $0.socketListeners.removeValue(forKey: path) }) else {
            throw RequestRefused("FORWARD_UNKNOWN", "\(path) is not forwarded")
        }
        await multiplexer.stopAccepting()
    }

    /// A session's listener (X11 display, agent socket): set up with `setup`; every accepted
    /// connection goes to `accept`. Returns the forward-server and the bound port (the display
    /// number for X11); `endSession` ends it.
    public func sessionListener(
        _ setup: ForwardSetup, role: String, start: Starter, accept: @escaping ForwardMultiplexer.Acceptor
    ) async throws -> (ForwardMultiplexer, UInt64) {
        let multiplexer = try await start(role)
        let bound: UInt64
        do {
            bound = try await multiplexer.setup(setup, acceptor: accept)
        } catch {
            await multiplexer.shutdown()
            throw error
        }
        let added = state.withLockedValue { state -> Bool in
            guard !state.closed else { return false }
            state.sessionListeners[ObjectIdentifier(multiplexer)] = multiplexer
            return true
        }
        guard added else {
            await multiplexer.shutdown()
            throw ForwardError.agentEnded
        }
        return (multiplexer, bound)
    }

    public func endSession(_ multiplexer: ForwardMultiplexer) async {
        state.withLockedValue { _ = $0.sessionListeners.removeValue(forKey: ObjectIdentifier(multiplexer)) }
        await multiplexer.shutdown()
    }

    /// Ends every forward-server of the connection.
    public func closeAll() async {
        let (dialer, listeners) = state.withLockedValue { state in
            state.closed = true
            defer {
                state.dialer = nil
                state.listeners = [:]
                state.socketListeners = [:]
                state.sessionListeners = [:]
            }
            return (state.dialer, Array(state.listeners.values) + Array(state.socketListeners.values) + Array(state.sessionListeners.values))
        }
        if let multiplexer = try? await dialer?.value { await multiplexer.shutdown() }
        var seen = Set<ObjectIdentifier>()
        for multiplexer in listeners where seen.insert(ObjectIdentifier(multiplexer)).inserted {
            await multiplexer.shutdown()
        }
    }

    private func dialer(_ make: @escaping @Sendable () async throws -> ForwardMultiplexer) async throws -> ForwardMultiplexer {
        let task = try state.withLockedValue { state -> Task<ForwardMultiplexer, Error> in
            guard !state.closed else { throw ForwardError.agentEnded }
            if let task = state.dialer { return task }
            let task = Task { try await make() }
            state.dialer = task
            return task
        }
        do {
            return try await task.value
        } catch {
            // A failed start is not cached: the next channel tries again.
            state.withLockedValue { if $0.dialer == task { $0.dialer = nil } }
            throw error
        }
    }

    /// False when the forward already exists or the connection is closing.
    private func addListener(_ multiplexer: ForwardMultiplexer, for keys: [ReverseForward]) -> Bool {
        state.withLockedValue { state in
            guard !state.closed, keys.allSatisfy({ state.listeners[$0] == nil }) else { return false }
            for key in keys { state.listeners[key] = multiplexer }
            return true
        }
    }

    private func hasListener(_ key: ReverseForward) -> Bool { state.withLockedValue { $0.listeners[key] != nil } }

    private func removeListener(_ key: ReverseForward) -> ForwardMultiplexer? {
        state.withLockedValue { state in
            guard let multiplexer = state.listeners[key] else { return nil }
            state.listeners = state.listeners.filter { $0.value !== multiplexer }
            return multiplexer
        }
    }
}

/// The port a listening forward reports to the client; known only after SETUP is answered.
private final class BoundPort: Sendable {
    private let box = NIOLockedValueBox<UInt32>(0)
    var value: UInt32 {
        get { box.withLockedValue { $0 } }
        set { box.withLockedValue { $0 = newValue } }
    }
}
