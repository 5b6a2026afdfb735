import BerthCBOR

/// Message types of the audit log (docs/configuration.md, "audit"), numbered as ContainerSSH numbers them.
public enum AuditMessageType: Int64, Sendable, CaseIterable {
    case connect = 0
    case disconnect = 1
    case authPassword = 100
    case authPasswordSuccessful = 101
    case authPasswordFailed = 102
    case authPasswordBackendError = 103
    case authPubKey = 104
    case authPubKeySuccessful = 105
    case authPubKeyFailed = 106
    case authPubKeyBackendError = 107
    case authKeyboardInteractiveChallenge = 108
    case authKeyboardInteractiveAnswer = 109
    case authKeyboardInteractiveFailed = 110
    case authKeyboardInteractiveBackendError = 111
    case handshakeFailed = 198
    case handshakeSuccessful = 199
    case globalRequestUnknown = 200
    case forwardTCPIP = 202
    case cancelForwardTCPIP = 203
    case forwardStreamLocal = 204
    case cancelForwardStreamLocal = 205
    case newChannelSuccessful = 301
    case newChannelFailed = 302
    case newChannelDirectTCPIP = 303
    case newChannelForwardedTCPIP = 304
    case newChannelX11 = 305
    case newChannelDirectStreamLocal = 306
    case newChannelForwardedStreamLocal = 307
    case channelRequestUnknown = 400
    case setEnv = 402
    case exec = 403
    case pty = 404
    case shell = 405
    case signal = 406
    case subsystem = 407
    case window = 408
    case x11 = 409
    case closeWrite = 496
    case close = 497
    case exitSignal = 498
    case exit = 499
    case io = 500
    case requestFailed = 501
    /// Berth's own (no ContainerSSH counterpart): a resumable program outlived its channel, and a
    /// detached program was attached to a channel (docs/agent-protocol.md, "Resumable sessions").
    case sessionDetached = 600
    case sessionResumed = 601
    /// Berth's own: `auth-agent-req@openssh.com` (ContainerSSH has no agent forwarding).
    case agentForwarding = 602
    /// Berth's own: an operator started or stopped watching the channel in the console
    /// (docs/console.md, "Watching"); payload `operator`.
    case consoleWatchStarted = 603
    case consoleWatchEnded = 604

    /// ContainerSSH's identifier, used in decoded output.
    public var name: String {
        switch self {
        case .connect: "connect"
        case .disconnect: "disconnect"
        case .authPassword: "auth_password"
        case .authPasswordSuccessful: "auth_password_successful"
        case .authPasswordFailed: "auth_password_failed"
        case .authPasswordBackendError: "auth_password_backend_error"
        case .authPubKey: "auth_pubkey"
        case .authPubKeySuccessful: "auth_pubkey_successful"
        case .authPubKeyFailed: "auth_pubkey_failed"
        case .authPubKeyBackendError: "auth_pubkey_backend_error"
        case .authKeyboardInteractiveChallenge: "auth_keyboard_interactive_challenge"
        case .authKeyboardInteractiveAnswer: "auth_keyboard_interactive_answer"
        case .authKeyboardInteractiveFailed: "auth_keyboard_interactive_failed"
        case .authKeyboardInteractiveBackendError: "auth_keyboard_interactive_backend_error"
        case .handshakeFailed: "handshake_failed"
        case .handshakeSuccessful: "handshake_successful"
        case .globalRequestUnknown: "global_request_unknown"
        case .forwardTCPIP: "forward_tcpip"
        case .cancelForwardTCPIP: "cancel_forward_tcpip"
        case .forwardStreamLocal: "forward_streamlocal"
        case .cancelForwardStreamLocal: "cancel_forward_streamlocal"
        case .newChannelSuccessful: "new_channel_successful"
        case .newChannelFailed: "new_channel_failed"
        case .newChannelDirectTCPIP: "new_channel_direct_tcpip"
        case .newChannelForwardedTCPIP: "new_channel_forwarded_tcpip"
        case .newChannelX11: "new_channel_x11"
        case .newChannelDirectStreamLocal: "new_channel_direct_streamlocal"
        case .newChannelForwardedStreamLocal: "new_channel_forwarded_streamlocal"
        case .channelRequestUnknown: "channel_request_unknown"
        case .setEnv: "setenv"
        case .exec: "exec"
        case .pty: "pty"
        case .shell: "shell"
        case .signal: "signal"
        case .subsystem: "subsystem"
        case .window: "window"
        case .x11: "x11"
        case .closeWrite: "close_write"
        case .close: "close"
        case .exitSignal: "exit_signal"
        case .exit: "exit"
        case .io: "io"
        case .requestFailed: "request_failed"
        case .sessionDetached: "berth_session_detached"
        case .sessionResumed: "berth_session_resumed"
        case .agentForwarding: "berth_auth_agent_req"
        case .consoleWatchStarted: "berth_console_watch_started"
        case .consoleWatchEnded: "berth_console_watch_ended"
        }
    }
}

/// One audit log entry: `{connectionId, timestamp, type, payload, channelId}`.
public struct AuditMessage: Sendable, Equatable {
    public var connectionID: String
    /// Unix time in nanoseconds.
    public var timestamp: Int64
    public var type: AuditMessageType
    /// A CBOR map, or nil (CBOR null) for messages without one.
    public var payload: CBORValue?
    /// Per-connection channel number; nil for connection-level messages.
    public var channelID: UInt64?

    public init(connectionID: String, timestamp: Int64, type: AuditMessageType, payload: CBORValue? = nil, channelID: UInt64? = nil) {
        self.connectionID = connectionID
        self.timestamp = timestamp
        self.type = type
        self.payload = payload
        self.channelID = channelID
    }

    public func cbor() -> CBORValue {
        .map([
            CBORPair(.text("connectionId"), .text(connectionID)),
            CBORPair(.text("timestamp"), .int(timestamp)),
            CBORPair(.text("type"), .int(type.rawValue)),
            CBORPair(.text("payload"), payload ?? .null),
            CBORPair(.text("channelId"), channelID.map { .unsigned($0) } ?? .null),
        ])
    }
}

/// Builds payload maps with the exact key names the format uses.
public struct AuditPayload {
    private var pairs: [CBORPair] = []
    /// About how many bytes the payload carries (for the writer queue's bound).
    public private(set) var byteCount = 0

    public init() {}

    public func text(_ key: String, _ value: String) -> AuditPayload { adding(key, .text(value), value.utf8.count) }
    public func bytes(_ key: String, _ value: [UInt8]) -> AuditPayload { adding(key, .bytes(value), value.count) }
    public func int(_ key: String, _ value: Int64) -> AuditPayload { adding(key, .int(value), 8) }
    public func bool(_ key: String, _ value: Bool) -> AuditPayload { adding(key, .bool(value), 1) }
    /// A list of maps, such as keyboard-interactive's `questions` and `answers`.
    public func maps(_ key: String, _ entries: [AuditPayload]) -> AuditPayload {
        adding(key, .array(entries.map(\.value)), entries.reduce(0) { $0 + $1.byteCount })
    }

    private func adding(_ key: String, _ value: CBORValue, _ size: Int) -> AuditPayload {
        var copy = self
        copy.pairs.append(CBORPair(.text(key), value))
        copy.byteCount += key.utf8.count + size
        return copy
    }

    public var value: CBORValue { .map(pairs) }
}
