/// The agent link protocol (docs/agent-protocol.md), shared by Berth and `berth-agent serve`.
/// Standard library only, so the agent stays statically linked.
///
/// A frame is a 9-byte header — big-endian uint32 length of what follows the length field
/// (1 + 4 + payload), uint8 type, big-endian uint32 channel — then the payload.
public enum AgentFrameType: UInt8, Sendable, CaseIterable {
    /// Channel 0. Berth → agent: version and secret. Agent → Berth: version and the agent's PID.
    case hello = 0x01
    /// A request on the channel failed (channel 0: the link itself); payload is a UTF-8 reason.
    case error = 0x02
    /// A request on the channel succeeded (file written, forward channel open).
    case ok = 0x03
    /// Berth → agent: start a program on a new channel (`AgentProcessStart`).
    case start = 0x10
    /// Agent → Berth: the program runs (`AgentProcessStarted`).
    case started = 0x11
    /// Berth → agent: program stdin, or the forwarding stream.
    case input = 0x12
    /// Agent → Berth: program stdout (the terminal's output with a pty), or the forwarding stream.
    case output = 0x13
    /// Agent → Berth: program stderr.
    case errorOutput = 0x14
    /// More credit (big-endian uint32 bytes) for the other side's data on this channel.
    case window = 0x15
    /// Berth → agent: stdin EOF (a forwarding channel: Berth has gone).
    case eof = 0x16
    /// Berth → agent: terminal size (`AgentWindowSize`).
    case resize = 0x17
    /// Berth → agent: deliver a signal to the program; payload is its name without `SIG`.
    case signal = 0x18
    /// Agent → Berth: how the program ended (`AgentExit`); the last frame of a program channel.
    case exit = 0x19
    /// Berth → agent: the channel is finished; a program still running is killed (its process group).
    case close = 0x1A
    /// Berth → agent: whether Berth took the pipe ends of a direct-pipes `started`
    /// (`AgentDirectAnswer`); only to an agent with `AgentFeatures.directPipes`.
    case direct = 0x1B
    /// Berth → agent: write a file (`AgentWriteFile`); answered by `ok` or `error`.
    case writeFile = 0x20
    /// Berth → agent: the account later programs of this link run as (`AgentUser`); answered by
    /// `ok` with `AgentUserReply`, or `error`.
    case user = 0x21
    /// Berth → agent: open a forwarding channel that carries the CBOR forward-server protocol.
    case openForward = 0x30
    /// Berth → agent: the link belongs to an authenticated user and its terminal programs outlive
    /// it (`AgentResumable`); answered by `ok` or `error`.
    case resumable = 0x40
    /// Berth → agent: Berth is done with the channel, but its terminal program keeps running,
    /// detached, until attached again or its window ends.
    case detach = 0x41
    /// Berth → agent: the detached sessions of the link's user; answered by `ok` with
    /// `AgentSessionList`.
    case sessions = 0x42
    /// Berth → agent: attach a detached session to a new channel (`AgentAttach`); answered by
    /// `started`, then the buffered output and the program's frames as after `start`, or `error`.
    case attach = 0x43
}

public struct AgentProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Stable code for logs: AGENT_PROTOCOL_*.
    public let code: String
    public let message: String
    public init(_ code: String, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code): \(message)" }
}

public struct AgentFrameHeader: Sendable, Equatable {
    public static let size = 9
    /// Largest payload a peer may send; bigger frames are a protocol error.
    public static let maximumPayload = 1 << 20
    public static let version: UInt8 = 1

    public var type: AgentFrameType
    public var channel: UInt32
    public var payloadLength: Int

    public init(type: AgentFrameType, channel: UInt32, payloadLength: Int) {
        self.type = type
        self.channel = channel
        self.payloadLength = payloadLength
    }

    /// Reads a header from the 9 bytes at `offset`.
    public init(parsing bytes: [UInt8], at offset: Int = 0) throws(AgentProtocolError) {
        precondition(bytes.count - offset >= Self.size)
        try self.init(
            bytes[offset], bytes[offset + 1], bytes[offset + 2], bytes[offset + 3], bytes[offset + 4],
            bytes[offset + 5], bytes[offset + 6], bytes[offset + 7], bytes[offset + 8])
    }

    /// Reads a header from 9 bytes.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(AgentProtocolError) {
        precondition(bytes.count >= Self.size)
        try self.init(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8])
    }

    private init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8, _ b6: UInt8, _ b7: UInt8, _ b8: UInt8) throws(AgentProtocolError) {
        let bytes = (b0, b1, b2, b3, b4, b5, b6, b7, b8)
        let length = Int(bytes.0) << 24 | Int(bytes.1) << 16 | Int(bytes.2) << 8 | Int(bytes.3)
        guard length >= 5 else { throw AgentProtocolError("AGENT_PROTOCOL_SHORT_FRAME", "frame length \(length) is shorter than its header") }
        guard length - 5 <= Self.maximumPayload else {
            throw AgentProtocolError("AGENT_PROTOCOL_FRAME_TOO_LARGE", "frame payload of \(length - 5) bytes exceeds \(Self.maximumPayload)")
        }
        guard let type = AgentFrameType(rawValue: bytes.4) else {
            throw AgentProtocolError("AGENT_PROTOCOL_UNKNOWN_TYPE", "unknown frame type \(bytes.4)")
        }
        self.type = type
        channel = UInt32(bytes.5) << 24 | UInt32(bytes.6) << 16 | UInt32(bytes.7) << 8 | UInt32(bytes.8)
        payloadLength = length - 5
    }

    /// Writes the 9 header bytes at `bytes`.
    public func write(to bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.size)
        let length = UInt32(payloadLength + 5)
        bytes[0] = UInt8(truncatingIfNeeded: length >> 24)
        bytes[1] = UInt8(truncatingIfNeeded: length >> 16)
        bytes[2] = UInt8(truncatingIfNeeded: length >> 8)
        bytes[3] = UInt8(truncatingIfNeeded: length)
        bytes[4] = type.rawValue
        bytes[5] = UInt8(truncatingIfNeeded: channel >> 24)
        bytes[6] = UInt8(truncatingIfNeeded: channel >> 16)
        bytes[7] = UInt8(truncatingIfNeeded: channel >> 8)
        bytes[8] = UInt8(truncatingIfNeeded: channel)
    }

    public var bytes: [UInt8] {
        var result = [UInt8](repeating: 0, count: Self.size)
        result.withUnsafeMutableBytes { write(to: $0) }
        return result
    }
}

/// A whole frame with its payload copied out; what the agent's control path and the tests use.
public struct AgentFrame: Sendable, Equatable {
    public var type: AgentFrameType
    public var channel: UInt32
    public var payload: [UInt8]

    public init(_ type: AgentFrameType, channel: UInt32, payload: [UInt8] = []) {
        self.type = type
        self.channel = channel
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        AgentFrameHeader(type: type, channel: channel, payloadLength: payload.count).bytes + payload
    }
}

/// Splits a byte stream into frames as bytes arrive. Buffered bytes are bounded by one frame.
public struct AgentFrameReader: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0

    public init() {}

    /// Adds bytes and returns every frame now complete; malformed input throws and the link must end.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(AgentProtocolError) -> [AgentFrame] {
        buffer.append(contentsOf: bytes)
        return try frames()
    }

    public mutating func feed(_ bytes: [UInt8]) throws(AgentProtocolError) -> [AgentFrame] {
        buffer.append(contentsOf: bytes)
        return try frames()
    }

    private mutating func frames() throws(AgentProtocolError) -> [AgentFrame] {
        var frames: [AgentFrame] = []
        while buffer.count - start >= AgentFrameHeader.size {
            let header = try AgentFrameHeader(parsing: buffer, at: start)
            let end = start + AgentFrameHeader.size + header.payloadLength
            guard buffer.count >= end else { break }
            frames.append(AgentFrame(header.type, channel: header.channel, payload: Array(buffer[(start + AgentFrameHeader.size)..<end])))
            start = end
        }
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 1 << 16 {
            buffer.removeFirst(start)
            start = 0
        }
        return frames
    }

    /// True when a frame was cut off by the end of the stream.
    public var isMidFrame: Bool { buffer.count > start }
}
