import BerthConfig
import BerthCore
import BerthForwardProtocol
import BerthForwarding
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Port forwarding in connection mode (SPEC §8): one shared `forward-server` exec dials for all
/// `direct-tcpip` channels of the connection; every `tcpip-forward` gets an exec of its own that
/// listens in the container. All of them end with the connection, before the container goes.
final class DockerForwards: Sendable {
    private let state = NIOLockedValueBox(State())

    private struct State {
        var dialer: Task<ForwardMultiplexer, Error>?
        /// Keyed by the host and the port the client asked for (and, for port 0, the bound one).
        var listeners: [ReverseForward: ForwardMultiplexer] = [:]
        var closed = false
    }

    func dialer(_ make: @escaping @Sendable () async throws -> ForwardMultiplexer) async throws -> ForwardMultiplexer {
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
    func addListener(_ multiplexer: ForwardMultiplexer, for keys: [ReverseForward]) -> Bool {
        state.withLockedValue { state in
            guard !state.closed, keys.allSatisfy({ state.listeners[$0] == nil }) else { return false }
            for key in keys { state.listeners[key] = multiplexer }
            return true
        }
    }

    func hasListener(_ key: ReverseForward) -> Bool { state.withLockedValue { $0.listeners[key] != nil } }

    func removeListener(_ key: ReverseForward) -> ForwardMultiplexer? {
        state.withLockedValue { state in
            guard let multiplexer = state.listeners[key] else { return nil }
            state.listeners = state.listeners.filter { $0.value !== multiplexer }
            return multiplexer
        }
    }

    /// Ends every forward-server of the connection.
    func closeAll() async {
        let (dialer, listeners) = state.withLockedValue { state in
            state.closed = true
            defer { state.dialer = nil; state.listeners = [:] }
            return (state.dialer, Array(state.listeners.values))
        }
        if let multiplexer = try? await dialer?.value { await multiplexer.shutdown() }
        var seen = Set<ObjectIdentifier>()
        for multiplexer in listeners where seen.insert(ObjectIdentifier(multiplexer)).inserted {
            await multiplexer.shutdown()
        }
    }
}

extension DockerConnection {
    public func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        try forwardingPossible { ChannelRejection(.administrativelyProhibited, $0) }
        let dialer: ForwardMultiplexer
        do {
            dialer = try await forwards.dialer { [self] in
                let multiplexer = try await startForwardServer(role: "dial")
                _ = try await multiplexer.setup(ForwardSetup(.portDial))
                return multiplexer
            }
        } catch {
            logger.log(.warning, "DOCKER_FORWARD_SERVER_FAILED", "cannot start the forward-server: \(error)")
            throw ChannelRejection(.connectFailed, "port forwarding is not available: \(error)")
        }
        let target = ForwardNewConnection(protocolName: "tcp", connectedAddress: request.host, connectedPort: UInt64(request.port),
                                          originatorAddress: request.originatorHost, originatorPort: UInt64(request.originatorPort))
        do {
            try await dialer.dial(target, channel: channel)
        } catch {
            logger.log(.info, "DOCKER_FORWARD_CONNECT_FAILED", "cannot connect to \(request.host):\(request.port) in the container: \(error)")
            throw ChannelRejection(.connectFailed, "\(error)")
        }
    }

    public func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        try forwardingPossible { RequestRefused("DOCKER_FORWARDING_UNAVAILABLE", $0) }
        guard !forwards.hasListener(forward) else {
            throw RequestRefused("DOCKER_FORWARD_EXISTS", "\(forward) is already forwarded")
        }
        let multiplexer = try await startForwardServer(role: "listen \(forward)")
        let bound = BoundPort()
        let port: UInt64
        do {
            port = try await multiplexer.setup(ForwardSetup(.portForward, bindHost: forward.host, bindPort: UInt64(forward.port))) { offer in
                let listening = ReverseForward(host: forward.host, port: bound.value)
                return try await opener.openForwardedChannel(listening, originatorHost: offer.originatorAddress, originatorPort: UInt32(clamping: offer.originatorPort))
            }
        } catch {
            await multiplexer.shutdown()
            logger.log(.info, "DOCKER_FORWARD_LISTEN_FAILED", "cannot listen on \(forward) in the container: \(error)")
            throw RequestRefused("DOCKER_FORWARD_LISTEN_FAILED", "cannot listen on \(forward): \(error)")
        }
        // The client reports connections under the port it asked for; for port 0 that is the bound one.
        bound.value = forward.port == 0 ? UInt32(clamping: port) : forward.port
        let keys = Set([forward, ReverseForward(host: forward.host, port: UInt32(clamping: port))])
        guard forwards.addListener(multiplexer, for: Array(keys)) else {
            await multiplexer.shutdown()
            throw RequestRefused("DOCKER_FORWARD_EXISTS", "\(forward) is already forwarded")
        }
        return UInt32(clamping: port)
    }

    public func onCancelReverseForward(_ forward: ReverseForward) async throws {
        guard let multiplexer = forwards.removeListener(forward) else {
            throw RequestRefused("DOCKER_FORWARD_UNKNOWN", "\(forward) is not forwarded")
        }
        // Open connections finish; the agent exits after the last one.
        await multiplexer.stopAccepting()
    }

    private func forwardingPossible<E: Error>(_ refusal: (String) -> E) throws {
        if execution.mode == .session { throw refusal("port forwarding does not work in session mode") }
        if execution.disableAgent { throw refusal("port forwarding needs the agent, which is disabled") }
        if idleContainer == nil { throw refusal("the container is not running") }
    }

    /// `agent forward-server` as an exec in the connection's container. Its stdin carries our
    /// packets, its stdout the agent's; what it logs on stderr goes to our log.
    private func startForwardServer(role: String) async throws -> ForwardMultiplexer {
        guard let container = idleContainer else { throw ForwardError.agentEnded }
        let exec = try await client.createExec(containerID: container, command: [execution.agentPath, "forward-server"], tty: false)
        let stream = try await client.startExec(exec, tty: false)
        var log = logger
        log[metadataKey: "forward"] = "\(role)"
        let multiplexer = ForwardMultiplexer(transport: DockerForwardTransport(stream: stream), logger: log)
        let logger = log
        let output = stream.output.compactMap { piece -> ByteBuffer? in
            switch piece {
            case .stdout(let bytes): return bytes
            case .stderr(let bytes):
                logger.log(.debug, "DOCKER_FORWARD_AGENT_LOG", String(buffer: bytes))
                return nil
            }
        }
        Task { await multiplexer.run(output) }
        return multiplexer
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

struct DockerForwardTransport: ForwardTransport {
    let stream: DockerRawStream

    func send(_ bytes: [UInt8]) async throws {
        try await stream.write(ByteBuffer(bytes: bytes))
    }

    func close() async {
        await stream.closeWrite()
        await stream.close()
    }
}
