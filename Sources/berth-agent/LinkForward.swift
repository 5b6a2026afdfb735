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
final class LinkForward: @unchecked Sendable {
    static let inputWindow = 1 << 20

    let channel: UInt32
    private let link: LinkOutput
    private let monitor = Monitor()
    private let onFinished: (LinkForward) -> Void
    private var table: ForwardTable!

    // Guarded by `monitor`.
    private var input: [[UInt8]] = []
    private var inputOutstanding = 0
    private var inputEOF = false
    private var outputCredit: Int
    private var finished = false

    init(channel: UInt32, link: LinkOutput, credit: UInt32, socketOwner: SocketOwner?, onFinished: @escaping (LinkForward) -> Void) {
        self.channel = channel
        self.link = link
        self.outputCredit = Int(credit)
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
        let chunk = monitor.locked { () -> [UInt8]? in
            while input.isEmpty && !inputEOF && !finished { monitor.wait() }
            if finished || input.isEmpty { return nil }
            return input.removeFirst()
        }
        guard let chunk else { return nil }
        let open = monitor.locked { () -> Bool in
            inputOutstanding -= chunk.count
            return !finished
        }
        if open { link.send(.window, channel, AgentCredit.encoded(UInt32(chunk.count))) }
        return chunk
    }

    /// Packets may overshoot the credit by one packet; the next waits until Berth catches up.
    private func sendOutput(_ bytes: [UInt8]) {
        let open = monitor.locked { () -> Bool in
            while outputCredit <= 0 && !finished { monitor.wait() }
            outputCredit -= bytes.count
            return !finished
        }
        if open { link.send(.output, channel, bytes) }
    }

    func enqueue(_ bytes: [UInt8]) throws(LinkProcess.InputProblem) {
        let accepted = monitor.locked { () -> Bool in
            guard !finished, !inputEOF else { return true }
            guard inputOutstanding + bytes.count <= Self.inputWindow + AgentFrameHeader.maximumPayload else { return false }
            inputOutstanding += bytes.count
            input.append(bytes)
            monitor.broadcast()
            return true
        }
        if !accepted { throw .windowExceeded }
    }

    func endOfInput() {
        monitor.locked {
            inputEOF = true
            monitor.broadcast()
        }
    }

    func addCredit(_ bytes: UInt32) {
        monitor.locked {
            outputCredit += Int(bytes)
            monitor.broadcast()
        }
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
