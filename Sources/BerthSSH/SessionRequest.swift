import BerthCore
import BerthSSHWire
import NIOCore

/// A request on a session channel (RFC 4254 §6), parsed out of the engine's wire form.
enum SessionRequest: Sendable, Equatable {
    case env(name: String, value: String)
    case pty(PtyRequest)
    case shell
    case exec(String)
    case subsystem(String)
    case windowChange(WindowSize)
    case signal(String)
    /// RFC 4335.
    case breakSignal(milliseconds: UInt32)
    case x11(X11Request)
    case agentForwarding

    var kind: SessionRequestRules.Kind {
        switch self {
        case .env: return .env
        case .pty: return .pty
        case .shell, .exec, .subsystem: return .program
        case .windowChange: return .windowChange
        case .signal, .breakSignal: return .signal
        case .x11, .agentForwarding: return .forwarding
        }
    }

    enum ParseResult: Equatable {
        case request(SessionRequest)
        /// A type Berth does not serve; refused and reported to the layers.
        case unsupported(String)
        /// A known type whose data does not parse.
        case malformed(String)
    }

    static func parse(type: String, payload: ByteBuffer) -> ParseResult {
        var data = payload
        switch type {
        case "env":
            guard let name = data.readSSHText(), let value = data.readSSHText() else { return .malformed(type) }
            return .request(.env(name: name, value: value))
        case "pty-req":
            guard let term = data.readSSHText(), let columns = data.readSSHUInt32(), let rows = data.readSSHUInt32(),
                let width = data.readSSHUInt32(), let height = data.readSSHUInt32(), var encoded = data.readSSHString()
            else { return .malformed(type) }
            return .request(
                .pty(
                    PtyRequest(
                        term: term, columns: columns, rows: rows, widthPixels: width,
                        heightPixels: height, modes: terminalModes(&encoded))))
        case "shell":
            return .request(.shell)
        case "exec":
            guard let command = data.readSSHText() else { return .malformed(type) }
            return .request(.exec(command))
        case "subsystem":
            guard let name = data.readSSHText() else { return .malformed(type) }
            return .request(.subsystem(name))
        case "window-change":
            guard let columns = data.readSSHUInt32(), let rows = data.readSSHUInt32(),
                let width = data.readSSHUInt32(), let height = data.readSSHUInt32()
            else { return .malformed(type) }
            return .request(.windowChange(WindowSize(columns: columns, rows: rows, widthPixels: width, heightPixels: height)))
        case "signal":
            guard let name = data.readSSHText() else { return .malformed(type) }
            return .request(.signal(name))
        case "break":
            guard let milliseconds = data.readSSHUInt32() else { return .malformed(type) }
            return .request(.breakSignal(milliseconds: milliseconds))
        case "x11-req":
            guard let single = data.readSSHBool(), let authProtocol = data.readSSHText(), let cookie = data.readSSHText(),
                let screen = data.readSSHUInt32()
            else { return .malformed(type) }
            return .request(.x11(X11Request(singleConnection: single, authProtocol: authProtocol, cookie: cookie, screen: screen)))
        case "auth-agent-req@openssh.com":
            return .request(.agentForwarding)
        default:
            return .unsupported(type)
        }
    }

    /// RFC 4254 §8: opcode byte + uint32 pairs, ended by TTY_OP_END (0); opcodes 160 and up take
    /// arguments Berth does not know, so parsing stops there rather than misreading the rest.
    private static func terminalModes(_ encoded: inout ByteBuffer) -> [UInt8: UInt32] {
        var modes: [UInt8: UInt32] = [:]
        while let opcode = encoded.readSSHUInt8(), opcode != 0, opcode < 160, let value = encoded.readSSHUInt32() {
            modes[opcode] = value
        }
        return modes
    }
}
