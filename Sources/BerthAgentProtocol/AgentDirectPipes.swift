/// Direct pipes (docs/agent-protocol.md, "Direct pipes"): on a socket link, Berth takes a
/// program's pipe ends out of the agent (pidfd_getfd) and moves its bytes itself, so they no longer
/// pass through the agent's threads and the link.

/// What an agent can do beyond protocol version 1. It goes out as an `ok` frame on channel 0
/// before the hello reply, so a Berth that does not know it ignores it and one that does has it
/// before the link is up; an agent that sends none has none of them.
public struct AgentFeatures: OptionSet, Sendable, Equatable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// `start` may ask for direct pipes (`AgentProcessStart.directPipes`), and `direct` is understood.
    public static let directPipes = AgentFeatures(rawValue: 1)

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u32(rawValue)
        return writer.bytes
    }

    /// Unknown bits are kept (and ignored by whoever does not know them); a later agent may add
    /// fields after the bitmask.
    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "features")
        rawValue = try reader.u32()
    }
}

/// One pipe end the agent holds for Berth to take: its descriptor number in the agent and the
/// pipe's inode, which Berth checks on what it took (a descriptor number alone could name
/// anything by then).
public struct AgentPipeEnd: Sendable, Equatable {
    public var descriptor: UInt32
    public var inode: UInt64

    public init(descriptor: UInt32, inode: UInt64) {
        self.descriptor = descriptor
        self.inode = inode
    }
}

/// The tail of `started` when direct pipes were asked for and the agent made them: the program's
/// stdin (write end), stdout and stderr (read ends).
public struct AgentDirectPipes: Sendable, Equatable {
    public var stdin: AgentPipeEnd
    public var stdout: AgentPipeEnd
    public var stderr: AgentPipeEnd

    public init(stdin: AgentPipeEnd, stdout: AgentPipeEnd, stderr: AgentPipeEnd) {
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
    }

    func write(_ writer: inout AgentPayloadWriter) {
        for end in [stdin, stdout, stderr] {
            writer.u32(end.descriptor)
            writer.u32(UInt32(truncatingIfNeeded: end.inode >> 32))
            writer.u32(UInt32(truncatingIfNeeded: end.inode))
        }
    }

    init(reading reader: inout AgentPayloadReader) throws(AgentProtocolError) {
        var ends: [AgentPipeEnd] = []
        for _ in 0..<3 {
            let descriptor = try reader.u32()
            let high = UInt64(try reader.u32())
            let low = UInt64(try reader.u32())
            ends.append(AgentPipeEnd(descriptor: descriptor, inode: high << 32 | low))
        }
        self.init(stdin: ends[0], stdout: ends[1], stderr: ends[2])
    }
}

/// `direct` (Berth → agent), Berth's answer to a `started` with direct pipes: `taken` (the agent
/// closes its copies and never moves the program's bytes), `stdinTaken` (it closes its stdin end
/// and moves the output over the link), or `declined` (it moves everything over the link as for
/// any program).
public enum AgentDirectAnswer: UInt8, Sendable {
    case declined = 0
    case taken = 1
    case stdinTaken = 2

    public func encoded() -> [UInt8] { [rawValue] }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        guard payload.count == 1, let answer = AgentDirectAnswer(rawValue: payload[0]) else {
            throw AgentProtocolError("AGENT_PROTOCOL_BAD_DIRECT", "direct answer is not one known byte")
        }
        self = answer
    }
}
