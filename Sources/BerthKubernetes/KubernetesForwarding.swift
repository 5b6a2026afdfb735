import BerthCore
import BerthForwardProtocol
import BerthForwarding
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Port forwarding in connection and persistent mode: the same forward-server protocol as on
/// Docker, with the agent run by exec.
extension KubernetesConnection {
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
        if backend.config.pod.mode == .session { return "port forwarding does not work in session mode" }
        if pod == nil { return "the pod is not running" }
        return nil
    }

    private func startForwardServer(role: String) async throws -> ForwardMultiplexer {
        guard let pod else { throw ForwardError.agentEnded }
        let stream = try await backend.exec(pod: pod, [backend.config.pod.agentPath, "forward-server"], tty: false)
        var log = logger
        log[metadataKey: "forward"] = "\(role)"
        let multiplexer = ForwardMultiplexer(transport: KubernetesForwardTransport(stream: stream), logger: log)
        let logger = log
        let output = stream.output.compactMap { piece -> ByteBuffer? in
            switch piece {
            case .stdout(let bytes): return bytes
            case .stderr(let bytes):
                logger.log(.debug, "FORWARD_AGENT_LOG", String(buffer: bytes))
                return nil
            case .status: return nil
            }
        }
        Task { await multiplexer.run(output) }
        return multiplexer
    }
}

struct KubernetesForwardTransport: ForwardTransport {
    let stream: KubernetesStream

    func send(_ bytes: [UInt8]) async throws { try await stream.write(ByteBuffer(bytes: bytes)) }

    func close() async {
        await stream.closeStdin()
        await stream.close()
    }
}
