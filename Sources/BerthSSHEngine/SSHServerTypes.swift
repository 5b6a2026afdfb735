import BerthSSHKeys
import BerthSSHWire
import NIOCore

// The server role's public API (docs/ssh-engine.md, "BerthSSHEngine"): what the delegate is told
// and how it answers. Everything here is used on the connection's event loop only.

public enum SSHAuthMethodRequest: Sendable {
    case none
    case password(String)
    /// Only after the signature over the session was verified with this key.
    case publicKey(SSHPublicKey)
    /// An OpenSSH certificate whose key signed the session; the CA is not checked yet.
    case certificate(SSHCertificate)
    /// A FIDO security key whose signature verified, with the flags and counter it asserted;
    /// whether they suffice (touch, PIN, counter) is the delegate's decision.
    case securityKey(SSHSecurityKey, SSHSecurityKey.Assertion)
    /// RFC 4256: the delegate asks its questions through `conversation`, then answers the request.
    case keyboardInteractive(submethods: String, conversation: SSHKeyboardInteractiveConversation)
}

/// One question of a keyboard-interactive round (RFC 4256 §3.2).
public struct SSHKeyboardInteractivePrompt: Sendable, Hashable {
    public var prompt: String
    public var echo: Bool

    public init(_ prompt: String, echo: Bool) {
        self.prompt = prompt
        self.echo = echo
    }
}

/// A keyboard-interactive exchange in progress: each `ask` sends USERAUTH_INFO_REQUEST and
/// returns the client's answers, one per prompt. Throws SSHKeyboardInteractiveAborted when the
/// client sends another request instead, answers with the wrong count, or goes away.
public struct SSHKeyboardInteractiveConversation: Sendable {
    let send: @Sendable (_ name: String, _ instruction: String, _ prompts: [SSHKeyboardInteractivePrompt]) -> EventLoopFuture<[String]>

    public init(send: @escaping @Sendable (_ name: String, _ instruction: String, _ prompts: [SSHKeyboardInteractivePrompt]) -> EventLoopFuture<[String]>) {
        self.send = send
    }

    public func ask(name: String = "", instruction: String = "", prompts: [SSHKeyboardInteractivePrompt]) async throws -> [String] {
        try await send(name, instruction, prompts).get()
    }
}

public struct SSHKeyboardInteractiveAborted: Error, Sendable, Hashable, CustomStringConvertible {
    public let reason: String
    public var description: String { "keyboard-interactive ended: \(reason)" }
}

public struct SSHAuthRequest: Sendable {
    public var username: String
    public var method: SSHAuthMethodRequest

    public init(username: String, method: SSHAuthMethodRequest) {
        self.username = username
        self.method = method
    }
}

public enum SSHAuthResult: Sendable {
    case success
    case failure(partialSuccess: Bool)
}

public enum SSHChannelOpenRequest: Sendable, Equatable {
    case session
    case directTCPIP(host: String, port: UInt32, originatorHost: String, originatorPort: UInt32)
    case directStreamLocal(path: String)
    /// x11, auth-agent@openssh.com, tun@openssh.com, forwarded-tcpip, …
    case other(type: String)
}

/// RFC 4254 §5.1 reason codes.
public struct SSHChannelOpenError: Error, Sendable, Hashable {
    public static let administrativelyProhibited: UInt32 = 1
    public static let connectFailed: UInt32 = 2
    public static let unknownChannelType: UInt32 = 3
    public static let resourceShortage: UInt32 = 4

    public var reason: UInt32
    public var message: String

    public init(reason: UInt32, message: String) {
        self.reason = reason
        self.message = message
    }
}

public struct SSHGlobalRequest: Sendable {
    public var type: String
    public var wantReply: Bool
    /// The request-specific data after `want reply`.
    public var payload: ByteBuffer

    public init(type: String, wantReply: Bool, payload: ByteBuffer) {
        self.type = type
        self.wantReply = wantReply
        self.payload = payload
    }
}

public struct SSHChannelRequest: Sendable {
    public var type: String
    public var wantReply: Bool
    /// The type-specific data after `want reply` (e.g. `string command` for exec).
    public var payload: ByteBuffer
    /// Matches the reply to its place in the channel's reply order.
    let id: UInt64

    init(type: String, wantReply: Bool, payload: ByteBuffer, id: UInt64) {
        self.type = type
        self.wantReply = wantReply
        self.payload = payload
        self.id = id
    }
}

/// Why a channel operation could not be carried out.
public struct SSHChannelError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: String
    public let message: String

    public static let closed = SSHChannelError(code: "SSH_CHANNEL_CLOSED", message: "the channel is closed")
    public static let eofSent = SSHChannelError(code: "SSH_CHANNEL_EOF_SENT", message: "EOF was already sent on this channel")
    public static let connectionClosed = SSHChannelError(code: "SSH_CONNECTION_CLOSED", message: "the SSH connection is closed")

    public var description: String { "\(code): \(message)" }
}

/// What both roles tell their owner about the connection protocol.
public protocol SSHConnectionDelegate: AnyObject {
    /// The peer opened a channel. Succeed after setting `channel.delegate`; fail with
    /// SSHChannelOpenError to refuse.
    func sshChannelOpen(_ request: SSHChannelOpenRequest, channel: SSHChannel, promise: EventLoopPromise<Void>)
    /// Succeed with reply data (may be empty) or fail for REQUEST_FAILURE; replies go out in request order.
    func sshGlobalRequest(_ request: SSHGlobalRequest, promise: EventLoopPromise<ByteBuffer>)
    /// Called once, when the connection is gone; `error` is nil for an orderly close.
    func sshConnectionClosed(error: Error?)
}

public protocol SSHServerDelegate: SSHConnectionDelegate {
    func sshClientVersion(_ version: String)
    /// Methods listed in USERAUTH_FAILURE ("publickey", "password", "keyboard-interactive").
    var sshAuthMethods: [String] { get }
    /// One request at a time, in arrival order (pipelined requests wait and are each counted).
    func sshAuthenticate(_ request: SSHAuthRequest, promise: EventLoopPromise<SSHAuthResult>)
}

public protocol SSHChannelDelegate: AnyObject {
    /// `data` counts against the window until the consumer calls `channel.consumed(_:)`.
    func sshChannel(_ channel: SSHChannel, received data: ByteBuffer, extendedType: UInt32?)
    func sshChannelEOF(_ channel: SSHChannel)
    /// Answer with `channel.reply(to:success:)` (replies go out in request order).
    func sshChannel(_ channel: SSHChannel, request: SSHChannelRequest)
    func sshChannelWritabilityChanged(_ channel: SSHChannel)
    /// Called once, when CLOSE went both ways or the connection ended.
    func sshChannelClosed(_ channel: SSHChannel)
}
