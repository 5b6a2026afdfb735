import BerthAgentProtocol

/// One link channel's flow control (docs/agent-protocol.md, "Flow control"), the same for a
/// program and a forwarding channel: stdin from Berth, queued only up to the window the agent
/// granted, and the output credit Berth granted. The state is guarded by the owner's monitor:
/// every member is used inside `monitor.locked`, and the waits release it while they sleep.
final class ChannelFlow: @unchecked Sendable {
    private let monitor: Monitor
    private let inputWindow: Int
    private var input: [[UInt8]] = []
    /// Input bytes received and not yet credited back.
    private var inputOutstanding = 0
    private var inputEOF = false
    /// How often queued input was dropped (`dropInput`): a chunk taken before a drop belongs to a
    /// link that is gone, and its credit must not go to the next one.
    private var drops = 0
    var outputCredit: Int

    init(monitor: Monitor, inputWindow: Int, outputCredit: UInt32) {
        self.monitor = monitor
        self.inputWindow = inputWindow
        self.outputCredit = Int(outputCredit)
    }

    /// Stdin from Berth; false when it overruns the granted window by more than one frame.
    /// Input after EOF is ignored.
    func accept(_ bytes: [UInt8]) -> Bool {
        guard !inputEOF else { return true }
        guard inputOutstanding + bytes.count <= inputWindow + AgentFrameHeader.maximumPayload else { return false }
        inputOutstanding += bytes.count
        input.append(bytes)
        monitor.broadcast()
        return true
    }

    func endInput() {
        inputEOF = true
        monitor.broadcast()
    }

    func addCredit(_ bytes: UInt32) {
        outputCredit += Int(bytes)
        monitor.broadcast()
    }

    /// The next stdin chunk, once there is one, with the drop count to hand back to
    /// `inputPassedOn`; nil at EOF or once `finished` holds.
    func nextInput(unless finished: () -> Bool) -> (bytes: [UInt8], drops: Int)? {
        while input.isEmpty && !inputEOF && !finished() { monitor.wait() }
        if finished() || input.isEmpty { return nil }
        return (input.removeFirst(), drops)
    }

    /// A chunk from `nextInput` was passed on: true when its bytes are to be credited back to
    /// Berth, false when the input it came with was dropped meanwhile.
    func inputPassedOn(_ count: Int, drops: Int) -> Bool {
        guard drops == self.drops else { return false }
        inputOutstanding -= count
        return true
    }

    /// Input the program has not read yet goes, and its credit with it (a detached program).
    func dropInput() {
        input = []
        inputOutstanding = 0
        drops += 1
    }

    /// How many output bytes may go out now (at most `limit`), after waiting for credit; 0 once
    /// `finished` holds.
    func awaitCredit(limit: Int, unless finished: () -> Bool) -> Int {
        while outputCredit <= 0 && !finished() { monitor.wait() }
        return finished() ? 0 : min(outputCredit, limit)
    }
}

/// A link channel that takes stdin frames (LinkServer dispatches `input` and `eof` to it).
protocol FlowControlledChannel: AnyObject {
    var monitor: Monitor { get }
    var flow: ChannelFlow { get }
    /// Guarded by `monitor`.
    var finished: Bool { get }
}

enum ChannelInputProblem: Error { case windowExceeded }

extension FlowControlledChannel {
    func enqueue(_ bytes: [UInt8]) throws(ChannelInputProblem) {
        let accepted = monitor.locked { finished || flow.accept(bytes) }
        if !accepted { throw .windowExceeded }
    }

    func endOfInput() {
        monitor.locked { flow.endInput() }
    }
}
