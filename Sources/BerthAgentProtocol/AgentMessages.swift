/// Payload encoding: big-endian integers, strings and byte strings as a uint32 length then the
/// bytes, lists as a uint32 count then the items. Every decoder checks every length against
/// what is left, so no input can make it read past the payload or allocate more than it holds.
public struct AgentPayloadWriter: Sendable {
    public private(set) var bytes: [UInt8] = []

    public init() {}

    public mutating func u8(_ value: UInt8) { bytes.append(value) }

    public mutating func u32(_ value: UInt32) {
        bytes += [
            UInt8(truncatingIfNeeded: value >> 24), UInt8(truncatingIfNeeded: value >> 16),
            UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value),
        ]
    }

    public mutating func data(_ value: [UInt8]) {
        u32(UInt32(value.count))
        bytes += value
    }

    public mutating func string(_ value: String) { data(Array(value.utf8)) }

    public mutating func strings(_ values: [String]) {
        u32(UInt32(values.count))
        for value in values { string(value) }
    }
}

public struct AgentPayloadReader: Sendable {
    private let bytes: [UInt8]
    private var offset = 0
    private let what: String

    public init(_ bytes: [UInt8], _ what: String) {
        self.bytes = bytes
        self.what = what
    }

    private func truncated() -> AgentProtocolError {
        AgentProtocolError("AGENT_PROTOCOL_TRUNCATED", "\(what) payload ends early")
    }

    public mutating func u8() throws(AgentProtocolError) -> UInt8 {
        guard offset < bytes.count else { throw truncated() }
        defer { offset += 1 }
        return bytes[offset]
    }

    public mutating func u32() throws(AgentProtocolError) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw truncated() }
        defer { offset += 4 }
        return UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8 | UInt32(bytes[offset + 3])
    }

    public mutating func data() throws(AgentProtocolError) -> [UInt8] {
        let count = Int(try u32())
        guard bytes.count - offset >= count else { throw truncated() }
        defer { offset += count }
        return Array(bytes[offset..<(offset + count)])
    }

    public mutating func string() throws(AgentProtocolError) -> String {
        let raw = try data()
        guard let text = String(validating: raw, as: UTF8.self) else {
            throw AgentProtocolError("AGENT_PROTOCOL_BAD_UTF8", "\(what) has a string that is not UTF-8")
        }
        return text
    }

    public mutating func strings() throws(AgentProtocolError) -> [String] {
        let count = Int(try u32())
        // Each string takes at least its 4-byte length: a count beyond that is a lie.
        guard count <= (bytes.count - offset) / 4 else { throw truncated() }
        var values: [String] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(try string()) }
        return values
    }

    /// Trailing bytes are an error: both sides must agree on the layout exactly.
    public func finish() throws(AgentProtocolError) {
        guard offset == bytes.count else {
            throw AgentProtocolError("AGENT_PROTOCOL_TRAILING_BYTES", "\(what) payload has \(bytes.count - offset) unexpected trailing bytes")
        }
    }
}

/// `hello` from Berth: the protocol version and the per-container secret (empty on a link that
/// needs none, like an exec stream only Berth can open).
public struct AgentHello: Sendable, Equatable {
    /// Where Berth gives a socket or TCP agent the secret its `hello` must carry
    /// (docs/agent-protocol.md, "Who may use the socket").
    public static let secretVariable = "BERTH_AGENT_SECRET"
    public var version: UInt8
    public var secret: [UInt8]

    public init(version: UInt8 = AgentFrameHeader.version, secret: [UInt8]) {
        self.version = version
        self.secret = secret
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u8(version)
        writer.data(secret)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "hello")
        version = try reader.u8()
        secret = try reader.data()
        try reader.finish()
    }
}

/// `hello` from the agent.
public struct AgentHelloReply: Sendable, Equatable {
    public var version: UInt8
    public var pid: UInt32

    public init(version: UInt8 = AgentFrameHeader.version, pid: UInt32) {
        self.version = version
        self.pid = pid
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u8(version)
        writer.u32(pid)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "hello reply")
        version = try reader.u8()
        pid = try reader.u32()
        try reader.finish()
    }
}

public struct AgentWindowSize: Sendable, Equatable {
    public var columns: UInt32
    public var rows: UInt32
    public var widthPixels: UInt32
    public var heightPixels: UInt32

    public init(columns: UInt32, rows: UInt32, widthPixels: UInt32 = 0, heightPixels: UInt32 = 0) {
        self.columns = columns
        self.rows = rows
        self.widthPixels = widthPixels
        self.heightPixels = heightPixels
    }

    func write(_ writer: inout AgentPayloadWriter) {
        writer.u32(columns)
        writer.u32(rows)
        writer.u32(widthPixels)
        writer.u32(heightPixels)
    }

    init(reading reader: inout AgentPayloadReader) throws(AgentProtocolError) {
        columns = try reader.u32()
        rows = try reader.u32()
        widthPixels = try reader.u32()
        heightPixels = try reader.u32()
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        write(&writer)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "resize")
        try self.init(reading: &reader)
        try reader.finish()
    }
}

/// `start`: run `argv[0]` (a path, no PATH search) with the agent's environment overridden by
/// `environment` (`NAME=VALUE`), in the agent's working directory (the container's), on a new
/// terminal of `terminal`'s size or on pipes. `outputWindow` is the first output credit in bytes.
public struct AgentProcessStart: Sendable, Equatable {
    public var argv: [String]
    public var environment: [String]
    public var terminal: AgentWindowSize?
    public var outputWindow: UInt32
    /// Berth would take the pipe ends itself (flag 2; only to an agent with
    /// `AgentFeatures.directPipes`, and never with a terminal).
    public var directPipes: Bool

    public init(argv: [String], environment: [String] = [], terminal: AgentWindowSize? = nil, outputWindow: UInt32, directPipes: Bool = false) {
        self.argv = argv
        self.environment = environment
        self.terminal = terminal
        self.outputWindow = outputWindow
        self.directPipes = directPipes && terminal == nil
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u8((terminal == nil ? 0 : 1) | (directPipes ? 2 : 0))
        (terminal ?? AgentWindowSize(columns: 0, rows: 0)).write(&writer)
        writer.u32(outputWindow)
        writer.strings(argv)
        writer.strings(environment)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "start")
        let flags = try reader.u8()
        guard flags <= 2 else { throw AgentProtocolError("AGENT_PROTOCOL_BAD_FLAGS", "start has unknown flags \(flags)") }
        let size = try AgentWindowSize(reading: &reader)
        terminal = flags & 1 == 1 ? size : nil
        directPipes = flags & 2 == 2
        outputWindow = try reader.u32()
        argv = try reader.strings()
        environment = try reader.strings()
        try reader.finish()
        guard let program = argv.first, !program.isEmpty else { throw AgentProtocolError("AGENT_PROTOCOL_NO_PROGRAM", "start names no program") }
        for entry in environment where entry.firstIndex(of: "=").map({ $0 == entry.startIndex }) ?? true {
            throw AgentProtocolError("AGENT_PROTOCOL_BAD_ENVIRONMENT", "environment entry is not NAME=VALUE")
        }
        for text in argv + environment where text.utf8.contains(0) {
            throw AgentProtocolError("AGENT_PROTOCOL_NUL_BYTE", "start has a NUL byte in a string")
        }
    }
}

/// `started`: the program's PID and the first stdin credit, then the pipe ends for Berth to take
/// when direct pipes were asked for and made.
public struct AgentProcessStarted: Sendable, Equatable {
    public var pid: UInt32
    public var inputWindow: UInt32
    public var direct: AgentDirectPipes?

    public init(pid: UInt32, inputWindow: UInt32, direct: AgentDirectPipes? = nil) {
        self.pid = pid
        self.inputWindow = inputWindow
        self.direct = direct
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u32(pid)
        writer.u32(inputWindow)
        direct?.write(&writer)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "started")
        pid = try reader.u32()
        inputWindow = try reader.u32()
        direct = payload.count > 8 ? try AgentDirectPipes(reading: &reader) : nil
        try reader.finish()
    }
}

/// `exit`: the exit status, or the signal that ended the program (name without `SIG`).
public enum AgentExit: Sendable, Equatable {
    case status(UInt32)
    case signal(name: String, coreDumped: Bool)

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        switch self {
        case .status(let code):
            writer.u8(0)
            writer.u32(code)
        case .signal(let name, let coreDumped):
            writer.u8(1)
            writer.u8(coreDumped ? 1 : 0)
            writer.string(name)
        }
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "exit")
        switch try reader.u8() {
        case 0: self = .status(try reader.u32())
        case 1:
            let core = try reader.u8()
            self = .signal(name: try reader.string(), coreDumped: core != 0)
        case let kind: throw AgentProtocolError("AGENT_PROTOCOL_BAD_EXIT", "unknown exit kind \(kind)")
        }
        try reader.finish()
    }
}

/// `writeFile`: `contents` to `path` (created or truncated; parents must exist) with `mode`.
public struct AgentWriteFile: Sendable, Equatable {
    public var path: String
    public var mode: UInt32
    public var contents: [UInt8]

    public init(path: String, mode: UInt32 = 0o600, contents: [UInt8]) {
        self.path = path
        self.mode = mode
        self.contents = contents
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.string(path)
        writer.u32(mode)
        writer.data(contents)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "writeFile")
        path = try reader.string()
        mode = try reader.u32()
        contents = try reader.data()
        try reader.finish()
        guard !path.isEmpty, !path.utf8.contains(0) else { throw AgentProtocolError("AGENT_PROTOCOL_BAD_PATH", "writeFile needs a path without NUL bytes") }
        guard mode <= 0o7777 else { throw AgentProtocolError("AGENT_PROTOCOL_BAD_MODE", "writeFile mode \(mode) is not a permission mode") }
    }
}

/// `user`: the account the link's programs run as from now on. An account of that name in the
/// container is used as it is; otherwise the agent adds one with `uid`/`gid`, `home` and `shell`
/// (docs/agent-protocol.md, "Accounts").
public struct AgentUser: Sendable, Equatable {
    public static let sudo: UInt8 = 1

    public var name: String
    public var uid: UInt32
    public var gid: UInt32
    public var home: String
    public var shell: String
    public var flags: UInt8

    public init(name: String, uid: UInt32, gid: UInt32, home: String, shell: String, flags: UInt8 = 0) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.home = home
        self.shell = shell
        self.flags = flags
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.string(name)
        writer.u32(uid)
        writer.u32(gid)
        writer.string(home)
        writer.string(shell)
        writer.u8(flags)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "user")
        name = try reader.string()
        uid = try reader.u32()
        gid = try reader.u32()
        home = try reader.string()
        shell = try reader.string()
        flags = try reader.u8()
        try reader.finish()
        guard Self.isAccountName(name) else {
            throw AgentProtocolError("AGENT_PROTOCOL_BAD_USER", "user name \(name.debugDescription) is not an account name")
        }
        guard home.hasPrefix("/"), shell.hasPrefix("/"), !(home + shell).contains(where: { $0 == ":" || $0 == "\n" || $0 == "\0" }) else {
            throw AgentProtocolError("AGENT_PROTOCOL_BAD_USER", "user home and shell must be absolute paths without ':' or line breaks")
        }
        guard flags <= Self.sudo else { throw AgentProtocolError("AGENT_PROTOCOL_BAD_FLAGS", "user has unknown flags \(flags)") }
    }

    /// What may stand in /etc/passwd and survive every tool that reads it: `[a-z_][a-z0-9_.-]*`,
    /// at most 32 characters (useradd's limits, without its trailing `$`).
    public static func isAccountName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard let first = bytes.first, bytes.count <= 32, mayStartAccountName(first) else { return false }
        return bytes.allSatisfy(mayBeInAccountName)
    }

    public static func mayStartAccountName(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || byte == UInt8(ascii: "_")
    }

    public static func mayBeInAccountName(_ byte: UInt8) -> Bool {
        mayStartAccountName(byte) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
    }
}

/// `ok` to `user`: the account programs run as now (an existing account's own ids and home).
public struct AgentUserReply: Sendable, Equatable {
    public var uid: UInt32
    public var gid: UInt32
    public var home: String

    public init(uid: UInt32, gid: UInt32, home: String) {
        self.uid = uid
        self.gid = gid
        self.home = home
    }

    public func encoded() -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u32(uid)
        writer.u32(gid)
        writer.string(home)
        return writer.bytes
    }

    public init(decoding payload: [UInt8]) throws(AgentProtocolError) {
        var reader = AgentPayloadReader(payload, "user reply")
        uid = try reader.u32()
        gid = try reader.u32()
        home = try reader.string()
        try reader.finish()
    }
}

/// A uint32 credit (`window`).
public enum AgentCredit {
    public static func encoded(_ bytes: UInt32) -> [UInt8] {
        var writer = AgentPayloadWriter()
        writer.u32(bytes)
        return writer.bytes
    }

    public static func decode(_ payload: [UInt8]) throws(AgentProtocolError) -> UInt32 {
        var reader = AgentPayloadReader(payload, "window")
        let value = try reader.u32()
        try reader.finish()
        return value
    }
}

/// The signals a `signal` frame may name (RFC 4254 §6.10 names), and how exits are reported.
public enum AgentSignals {
    public static let names = ["ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM", "USR1", "USR2"]

    /// The name without `SIG`, or nil for a signal outside the list.
    public static func canonical(_ name: String) -> String? {
        let bare = name.hasPrefix("SIG") ? String(name.dropFirst(3)) : name
        return names.contains(bare) ? bare : nil
    }
}
