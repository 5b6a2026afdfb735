/// Resumable sessions (docs/agent-protocol.md, "Resumable sessions"): the frames that let a
/// terminal program outlive the link it was started on and be attached to a later one.

/// `resumable`: who the link's user is (the name Berth authenticated, never anything the user
/// sends), how long a detached program waits, and how many bytes of its output are kept.
public struct AgentResumable: Sendable, Equatable {
    public var owner: String
    public var windowSeconds: UInt32
    public var bufferBytes: UInt32

    public init(owner: String, windowSeconds: UInt32, bufferBytes: UInt32) {
        self.owner = owner
        self.windowSeconds = windowSeconds
        self.bufferBytes = bufferBytes
    }

    /// The largest buffer a link may ask for: a detached program must not hold more memory than a
    /// frame, whatever the configuration says.
    public static let maximumBuffer: UInt32 = UInt32(AgentFrameHeader.maximumPayload)

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.string(owner)
        writer.u32(windowSeconds)
        writer.u32(bufferBytes)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "resumable")
        owner = try reader.string()
        windowSeconds = try reader.u32()
        bufferBytes = try reader.u32()
        try reader.finish()
        guard !owner.isEmpty, owner.utf8.count <= 256, !owner.utf8.contains(0) else {
            throw AgentProtocolError("AGENT_PROTOCOL_BAD_OWNER", "resumable needs an owner of 1 to 256 bytes without NUL")
        }
        guard bufferBytes <= Self.maximumBuffer else {
            throw AgentProtocolError("AGENT_PROTOCOL_BAD_BUFFER", "resumable buffer \(bufferBytes) exceeds \(Self.maximumBuffer) bytes")
        }
    }
}

/// One detached session as `sessions` lists it.
public struct AgentDetachedSession: Sendable, Equatable {
    /// The program's PID in the container; what `attach` names.
    public var pid: UInt32
    /// Seconds since it was detached, and seconds left before it is ended.
    public var detachedSeconds: UInt32
    public var remainingSeconds: UInt32
    /// The program's argv, joined by spaces, for the user to recognise it.
    public var command: String

    public init(pid: UInt32, detachedSeconds: UInt32, remainingSeconds: UInt32, command: String) {
        self.pid = pid
        self.detachedSeconds = detachedSeconds
        self.remainingSeconds = remainingSeconds
        self.command = command
    }
}

/// `ok` to `sessions`: the user's detached sessions, oldest first.
public struct AgentSessionList: Sendable, Equatable {
    public var sessions: [AgentDetachedSession]

    public init(_ sessions: [AgentDetachedSession]) { self.sessions = sessions }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u32(UInt32(sessions.count))
        for session in sessions {
            writer.u32(session.pid)
            writer.u32(session.detachedSeconds)
            writer.u32(session.remainingSeconds)
            writer.string(session.command)
        }
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "session list")
        let count = Int(try reader.u32())
        // Each entry takes at least 16 bytes: a count beyond that is a lie.
        guard count <= payload.count / 16 else { throw AgentProtocolError("AGENT_PROTOCOL_TRUNCATED", "session list payload ends early") }
        var sessions: [AgentDetachedSession] = []
        for _ in 0..<count {
            sessions.append(
                AgentDetachedSession(
                    pid: try reader.u32(), detachedSeconds: try reader.u32(),
                    remainingSeconds: try reader.u32(), command: try reader.string()))
        }
        try reader.finish()
        self.sessions = sessions
    }
}

/// `attach`: the detached session's PID, the client's terminal size now, and the first output
/// credit (as in `start`).
public struct AgentAttach: Sendable, Equatable {
    public var pid: UInt32
    public var terminal: AgentWindowSize
    public var outputWindow: UInt32

    public init(pid: UInt32, terminal: AgentWindowSize, outputWindow: UInt32) {
        self.pid = pid
        self.terminal = terminal
        self.outputWindow = outputWindow
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u32(pid)
        terminal.write(&writer)
        writer.u32(outputWindow)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "attach")
        pid = try reader.u32()
        terminal = try AgentWindowSize(reading: &reader)
        outputWindow = try reader.u32()
        try reader.finish()
        guard pid > 0 else { throw AgentProtocolError("AGENT_PROTOCOL_BAD_PID", "attach names PID 0") }
    }
}
