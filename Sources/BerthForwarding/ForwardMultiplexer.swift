import BerthCore
import BerthForwardProtocol
import Logging
import NIOCore

/// Berth's end of one `forward-server` (docs/agent-protocol.md, "Forwarding"): sets it up, opens connections through it
/// (dial mode) or accepts the ones it offers (listen mode), and moves bytes between them and SSH
/// channels. Agent output is handled one packet at a time and DATA waits for the client's window,
/// so neither direction can grow memory without bound.
public actor ForwardMultiplexer {
    public typealias Acceptor = @Sendable (ForwardNewConnection) async throws -> any ForwardChannel

    private let transport: any ForwardTransport
    private let logger: Logger
    private let outgoing: AsyncStream<Outgoing>.Continuation
    private var links: [UInt64: ForwardLinkState] = [:]
    private var lastID: UInt64 = 0
    private var lastOfferedID: UInt64 = 0
    private var setupAnswer: Answer<ForwardPacket>?
    /// Dials waiting for the agent's answer, with the channel each will be linked to.
    private var openAnswers: [UInt64: (Answer<Void>, any ForwardChannel)] = [:]
    private var acceptor: Acceptor?
    private var ended = false
    private var endWaiters: [CheckedContinuation<Void, Never>] = []

    private struct Outgoing: Sendable {
        let bytes: [UInt8]
        let done: CheckedContinuation<Void, Error>
    }

    public init(transport: any ForwardTransport, logger: Logger) {
        self.transport = transport
        self.logger = logger
        let (stream, continuation) = AsyncStream.makeStream(of: Outgoing.self)
        self.outgoing = continuation
        // One writer, so packets reach the agent in the order they were queued (ids must rise).
        Task {
            for await item in stream {
                do {
                    try await transport.send(item.bytes)
                    item.done.resume()
                } catch {
                    item.done.resume(throwing: error)
                }
            }
        }
    }

    /// Reads the agent's output until it ends; run it in a task of its own.
    public func run<Output: AsyncSequence & Sendable>(_ output: Output) async where Output.Element == ByteBuffer {
        var reader = ForwardPacketReader()
        do {
            for try await chunk in output {
                for packet in try reader.feed(chunk.readableBytesView) {
                    await handle(packet)
                }
            }
        } catch {
            logger.log(.warning, "FORWARD_PROTOCOL_ERROR", "forward-server stream failed: \(error)")
        }
        await end()
    }

    /// Sends SETUP and waits for the answer. For a listening setup, returns the bound port.
    public func setup(_ setup: ForwardSetup, acceptor: Acceptor? = nil) async throws -> UInt64 {
        self.acceptor = acceptor
        guard !ended else { throw ForwardError.agentEnded }
        let waiter = Answer<ForwardPacket>()
        setupAnswer = waiter
        await send(ForwardPacket(.setup, payload: setup.encoded()))
        let answer = try await waiter.value()
        guard answer.type == .success else {
            throw ForwardError.refused(forwardErrorText(answer.payload))
        }
        return ForwardSetupReply(decoding: answer.payload)?.boundPort ?? setup.bindPort
    }

    /// Dial mode: asks the agent to connect to `target`; returns once it has, then moves bytes
    /// between the agent and `channel` until the connection ends.
    public func dial(_ target: ForwardNewConnection, channel: any ForwardChannel) async throws {
        guard !ended else { throw ForwardError.agentEnded }
        lastID += 1
        let id = lastID
        let waiter = Answer<Void>()
        // The agent sends DATA right after its SUCCESS; the link must exist when SUCCESS is
        // handled, not when this task resumes, or the first bytes would find no link.
        openAnswers[id] = (waiter, channel)
        await send(ForwardPacket(.newConnection, connectionID: id, payload: target.encoded()))
        try await waiter.value()
    }

    /// Listen mode: the agent stops accepting and ends once its open connections have.
    public func stopAccepting() async {
        acceptor = nil
        await send(ForwardPacket(.noMoreConnections))
    }

    /// Ends the agent and every connection through it.
    public func shutdown() async {
        await transport.close()
        await end()
    }

    /// Returns once the agent's output has ended.
    public func waitEnded() async {
        guard !ended else { return }
        await withCheckedContinuation { endWaiters.append($0) }
    }

    private func handle(_ packet: ForwardPacket) async {
        let id = packet.connectionID
        switch packet.type {
        case .success, .error:
            if id == 0, let waiter = setupAnswer {
                setupAnswer = nil
                waiter.complete(.success(packet))
            } else if let (waiter, channel) = openAnswers.removeValue(forKey: id) {
                if packet.type == .success { attach(ForwardLink(id: id, channel: channel)) }
                waiter.complete(packet.type == .success ? .success(()) : .failure(ForwardError.refused(forwardErrorText(packet.payload))))
            } else if packet.type == .error {
                await finish(id)
            } else if let state = links[id], state.sentClose {
                await finish(id)
            }
        case .data:
            guard let state = links[id], !state.peerDone, let payload = packet.payload else { return }
            do {
                try await state.link.channel.write(ByteBuffer(bytes: payload))
            } catch {
                await abort(id)
            }
        case .closeConnection:
            guard var state = links[id] else { return await send(ForwardPacket(.error, connectionID: id)) }
            state.peerDone = true
            links[id] = state
            await state.link.channel.closeWrite()
            if state.sentClose {
                await send(ForwardPacket(.success, connectionID: id))
                await finish(id)
            }
        case .newConnection:
            guard id > lastOfferedID, let acceptor, let payload = packet.payload,
                let offer = try? ForwardNewConnection(decoding: payload)
            else {
                return await send(ForwardPacket(.error, connectionID: id))
            }
            lastOfferedID = id
            Task { await self.accept(id, offer, acceptor) }
        case .noMoreConnections, .setup:
            break
        }
    }

    private func accept(_ id: UInt64, _ offer: ForwardNewConnection, _ acceptor: Acceptor) async {
        do {
            let channel = try await acceptor(offer)
            guard !ended else { return await channel.close() }
            attach(ForwardLink(id: id, channel: channel))
            await send(ForwardPacket(.success, connectionID: id))
        } catch {
            logger.log(.debug, "FORWARD_CHANNEL_REFUSED", "the client refused a forwarded connection: \(error)")
            await send(ForwardPacket(.error, connectionID: id))
        }
    }

    /// Starts moving the client's bytes to the agent and watching for the channel's end.
    private func attach(_ link: ForwardLink) {
        links[link.id] = ForwardLinkState(link: link)
        let pump = Task {
            for await chunk in link.channel.input {
                guard await self.isOpen(link.id) else { break }
                await self.send(ForwardPacket(.data, connectionID: link.id, payload: Array(chunk.readableBytesView)))
            }
            await self.clientFinished(link.id)
        }
        Task {
            await link.channel.waitClosed()
            // OpenSSH sends its last data, EOF and CLOSE back to back: what is still queued
            // goes to the agent before the connection is dropped.
            await pump.value
            await self.abort(link.id)
        }
    }

    private func isOpen(_ id: UInt64) -> Bool { links[id] != nil }

    private func clientFinished(_ id: UInt64) async {
        guard var state = links[id], !state.sentClose else { return }
        state.sentClose = true
        links[id] = state
        if state.peerDone {
            await send(ForwardPacket(.success, connectionID: id))
            await finish(id)
        } else {
            await send(ForwardPacket(.closeConnection, connectionID: id))
        }
    }

    /// Both sides are done: close the channel.
    private func finish(_ id: UInt64) async {
        guard let state = links.removeValue(forKey: id) else { return }
        await state.link.channel.closeWrite()
        await state.link.channel.close()
    }

    /// The channel went away early: the agent drops the connection at once.
    private func abort(_ id: UInt64) async {
        guard let state = links.removeValue(forKey: id) else { return }
        await send(ForwardPacket(.error, connectionID: id))
        await state.link.channel.close()
    }

    private func send(_ packet: ForwardPacket) async {
        guard !ended else { return }
        do {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, Error>) in
                outgoing.yield(Outgoing(bytes: packet.encoded(), done: done))
            }
        } catch {
            logger.log(.debug, "FORWARD_AGENT_GONE", "cannot write to the forward-server: \(error)")
            await end()
        }
    }

    private func end() async {
        guard !ended else { return }
        ended = true
        outgoing.finish()
        setupAnswer?.complete(.failure(ForwardError.agentEnded))
        setupAnswer = nil
        for (waiter, _) in openAnswers.values { waiter.complete(.failure(ForwardError.agentEnded)) }
        openAnswers = [:]
        let open = links.values.map(\.link.channel)
        links = [:]
        for waiter in endWaiters { waiter.resume() }
        endWaiters = []
        await transport.close()
        for channel in open { await channel.close() }
    }
}

/// An answer that may arrive before anyone waits for it; used only inside the actor.
final class Answer<Value: Sendable> {
    private var result: Result<Value, Error>?
    private var waiter: CheckedContinuation<Value, Error>?

    func complete(_ result: Result<Value, Error>) {
        guard self.result == nil else { return }
        self.result = result
        waiter?.resume(with: result)
        waiter = nil
    }

    func value(isolation: isolated (any Actor)? = #isolation) async throws -> Value {
        if let result { return try result.get() }
        return try await withCheckedThrowingContinuation { waiter = $0 }
    }
}

public enum ForwardError: Error, CustomStringConvertible, Sendable {
    case agentEnded
    case refused(String)

    public var description: String {
        switch self {
        case .agentEnded: return "the forward-server in the container has ended"
        case .refused(let reason): return reason
        }
    }
}
