import BerthConfig
import BerthCore
import BerthForwardProtocol
import BerthForwarding
import Logging
import NIOConcurrencyHelpers
import NIOCore

extension DockerConnection {
    public func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        try await forwards.direct(request, channel: channel, problem: forwardingProblem, logger: logger) { try await self.startForwardServer(role: $0) }
    }

    public func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        try await forwards.reverse(forward, opener: opener, problem: forwardingProblem, logger: logger) { try await self.startForwardServer(role: $0) }
    }

    public func onCancelReverseForward(_ forward: ReverseForward) async throws {
        try await forwards.cancel(forward)
    }

    private var forwardingProblem: String? {
        if execution.mode == .session { return "port forwarding does not work in session mode" }
        if execution.disableAgent { return "port forwarding needs the agent, which is disabled" }
        if idleContainer == nil { return "the container is not running" }
        return nil
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
                logger.log(.debug, "FORWARD_AGENT_LOG", String(buffer: bytes))
                return nil
            }
        }
        Task { await multiplexer.run(output) }
        return multiplexer
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
