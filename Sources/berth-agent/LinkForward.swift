#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol
import BerthForwardProtocol

/// A forwarding channel on the link: the forward-server protocol (docs/agent-protocol.md, "Forwarding") carried in `input`
/// and `output` frames, served by the same code as the `forward-server` mode, on a thread of its
/// own so that a slow socket only holds back this channel.
final class LinkForward: FlowControlledChannel, @unchecked Sendable {
    static let inputWindow = 1 << 20

    let channel: UInt32
    private let link: LinkOutput
    let monitor = Monitor()
    let flow: ChannelFlow
    private let onFinished: (LinkForward) -> Void
    private var table: ForwardTable!

    // Guarded by `monitor`.
    private(set) var finished = false

    init(channel: UInt32, link: LinkOutput, credit: UInt32, socketOwner: SocketOwner?, onFinished: @escaping (LinkForward) -> Void) {
        self.channel = channel
        self.link = link
        flow = ChannelFlow(monitor: monitor, inputWindow: Self.inputWindow, outputCredit: credit)
        self.onFinished = onFinished
        table = ForwardTable(
            // Weak: the table's threads may still report after this forward finished and went.
            output: PacketOutput { [weak self] bytes in self?.sendOutput(bytes) }, socketOwner: socketOwner,
            onIdle: { [weak self] in self?.finish(code: 0) })
    }

    func start() {
        link.send(.ok, channel, AgentCredit.encoded(UInt32(Self.inputWindow)))
        startThread {
            var reader = ForwardPacketReader()
            var pending: [ForwardPacket] = []
            let failure = ForwardServer.serve(self.table) { () throws(ForwardServer.Failure) -> ForwardPacket? in
                while pending.isEmpty {
                    guard let chunk = self.nextInput() else { return nil }
                    do {
                        pending = try reader.feed(chunk)
                    } catch {
                        throw ForwardServer.protocolFailure("\(error)")
                    }
                }
                return pending.removeFirst()
            }
            if let failure { self.link.send(.errorOutput, self.channel, Array("containerssh-agent: \(failure.message)\n".utf8)) }
            self.table.shutdownAll()
            self.finish(code: failure?.code ?? 0)
        }
    }

    private func nextInput() -> [UInt8]? {
        let taken = monitor.locked { flow.nextInput(unless: { finished }) }
        guard let (chunk, drops) = taken else { return nil }
        let open = monitor.locked { flow.inputPassedOn(chunk.count, drops: drops) && !finished }
        if open { link.send(.window, channel, AgentCredit.encoded(UInt32(chunk.count))) }
        return chunk
    }

    /// Packets may overshoot the credit by one packet; the next waits until Berth catches up.
    private func sendOutput(_ bytes: [UInt8]) {
        let open = monitor.locked { () -> Bool in
            guard flow.awaitCredit(limit: .max, unless: { finished }) > 0 else { return false }
            flow.outputCredit -= bytes.count
            return true
        }
        if open { link.send(.output, channel, bytes) }
    }

    func addCredit(_ bytes: UInt32) {
        monitor.locked { flow.addCredit(bytes) }
    }

    /// Berth closed the channel: every connection and the listener end at once.
    func close() {
        let first = monitor.locked { () -> Bool in
            defer { finished = true; monitor.broadcast() }
            return !finished
        }
        table.shutdownAll()
        if first { onFinished(self) }
    }

    /// The forward-server has ended by itself (idle after NO_MORE_CONNECTIONS, or a failure).
    private func finish(code: Int32) {
        let first = monitor.locked { () -> Bool in
            defer { finished = true; monitor.broadcast() }
            return !finished
        }
        guard first else { return }
        link.send(.exit, channel, AgentExit.status(UInt32(code)).encoded())
        onFinished(self)
    }
}
