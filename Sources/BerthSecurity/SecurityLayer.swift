import BerthConfig
import BerthCore
import Logging
import NIOConcurrencyHelpers

/// The security layer: wraps the backend's connection handler and refuses what the policy does
/// not allow. Refusals are request failures; the connection stays usable.
public final class SecureSSHConnection: SSHConnectionHandler {
    private let next: any SSHConnectionHandler
    private let policy: SecurityPolicy
    private let logger: Logger
    private let openSessions = NIOLockedValueBox(0)

    public init(next: any SSHConnectionHandler, config: SecurityConfig, restrictions: LoginRestrictions = LoginRestrictions(), logger: Logger) {
        self.next = next
        self.policy = SecurityPolicy(config, restrictions: restrictions)
        self.logger = logger
    }

    public func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        // Counts sessions open now, not sessions ever opened (ContainerSSH's defect, docs/architecture.md, "ContainerSSH defects Berth does not copy").
        if let limit = policy.maxSessions {
            let admitted = openSessions.withLockedValue { count -> Bool in
                guard count < limit else { return false }
                count += 1
                return true
            }
            guard admitted else {
                logger.log(.info, "SECURITY_MAX_SESSIONS", "session refused: \(limit) sessions already open")
                throw ChannelRejection(.resourceShortage, "too many sessions (maxSessions \(limit))")
            }
        }
        do {
            let inner = try await next.onSessionChannel(channel)
            return SecureSession(next: inner, policy: policy, logger: logger) { [openSessions, policy] in
                if policy.maxSessions != nil { openSessions.withLockedValue { $0 -= 1 } }
            }
        } catch {
            if policy.maxSessions != nil { openSessions.withLockedValue { $0 -= 1 } }
            throw error
        }
    }

    public func onUnsupportedChannel(type: String) async { await next.onUnsupportedChannel(type: type) }
    public func onUnsupportedGlobalRequest(type: String) async { await next.onUnsupportedGlobalRequest(type: type) }

    public func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        guard policy.allowsForwarding(policy.config.forwarding.forwardingMode) else {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "direct-tcpip to \(request.host):\(request.port) refused: forwardingMode is not enable")
            throw ChannelRejection(.administrativelyProhibited, "port forwarding is disabled")
        }
        if let reason = policy.keyRefusesOpen(host: request.host, port: request.port) {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "direct-tcpip to \(request.host):\(request.port) refused: \(reason)")
            throw ChannelRejection(.administrativelyProhibited, reason)
        }
        try await next.onDirectForward(request, channel: channel)
    }

    public func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        guard policy.allowsForwarding(policy.config.forwarding.reverseForwardingMode) else {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "tcpip-forward on \(forward) refused: reverseForwardingMode is not enable")
            throw RequestRefused("SECURITY_FORWARDING_REFUSED", "reverse port forwarding is disabled")
        }
        if let reason = policy.keyRefusesListen(host: forward.host, port: forward.port) {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "tcpip-forward on \(forward) refused: \(reason)")
            throw RequestRefused("SECURITY_FORWARDING_REFUSED", reason)
        }
        return try await next.onReverseForward(forward, opener: opener)
    }

    public func onCancelReverseForward(_ forward: ReverseForward) async throws {
        try await next.onCancelReverseForward(forward)
    }

    public func onDirectStreamLocal(path: String, channel: any ForwardChannel) async throws {
        if let reason = policy.refusesSocketForwarding(listen: false) {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "direct-streamlocal to \(path) refused: \(reason)")
            throw ChannelRejection(.administrativelyProhibited, "unix socket forwarding is disabled")
        }
        try await next.onDirectStreamLocal(path: path, channel: channel)
    }

    public func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws {
        if let reason = policy.refusesSocketForwarding(listen: true) {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "streamlocal-forward on \(path) refused: \(reason)")
            throw RequestRefused("SECURITY_FORWARDING_REFUSED", "unix socket listening is disabled")
        }
        try await next.onStreamLocalForward(path: path, opener: opener)
    }

    public func onCancelStreamLocalForward(path: String) async throws {
        try await next.onCancelStreamLocalForward(path: path)
    }
}

struct SecureSession: SessionChannelHandler {
    let next: any SessionChannelHandler
    let policy: SecurityPolicy
    let logger: Logger
    let onClosed: @Sendable () -> Void
    /// Env requests the backend accepted on this channel (security.env.maxVariables).
    let acceptedEnv = NIOLockedValueBox(0)

    private func refuse(_ what: String) -> RequestRefused {
        logger.log(.info, "SECURITY_REQUEST_REFUSED", "refused by the security policy: \(what)")
        return RequestRefused("SECURITY_REQUEST_REFUSED", "\(what) is not allowed")
    }

    func onEnv(requestID: UInt64, name: String, value: String) async throws {
        let shown = String(name.prefix(64))
        switch policy.envDecision(name: name, value: value, alreadySet: acceptedEnv.withLockedValue { $0 }) {
        case .allow: break
        case .invalidName:
            logger.log(.info, "SECURITY_ENV_INVALID_NAME", "env request refused: \"\(shown)\" is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")
            throw RequestRefused("SECURITY_ENV_INVALID_NAME", "\(shown) is not a valid environment variable name")
        case .denied: throw refuse("environment variable \(shown)")
        case .deniedByForcedCommand: throw refuse("environment variable \(shown) (with forceCommand)")
        case .tooLarge(let limit):
            logger.log(.info, "SECURITY_ENV_LIMIT", "env request \(shown) refused: name and value exceed security.env.maxSize (\(limit) bytes)")
            throw RequestRefused("SECURITY_ENV_LIMIT", "environment variable \(shown) is too large")
        case .tooMany(let limit):
            logger.log(.info, "SECURITY_ENV_LIMIT", "env request \(shown) refused: security.env.maxVariables (\(limit)) reached")
            throw RequestRefused("SECURITY_ENV_LIMIT", "too many environment variables")
        }
        try await next.onEnv(requestID: requestID, name: name, value: value)
        acceptedEnv.withLockedValue { $0 += 1 }
    }

    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {
        guard policy.allowsTTY() else { throw refuse("a terminal") }
        guard policy.restrictions.pty else { throw refuse("a terminal (the login key has no-pty or restrict)") }
        try await next.onPtyRequest(requestID: requestID, pty)
    }

    func onShell(requestID: UInt64) async throws {
        if let forced = policy.forceCommand {
            return try await next.onExec(requestID: requestID, command: forced)
        }
        guard policy.allowsShell() else { throw refuse("a shell") }
        try await next.onShell(requestID: requestID)
    }

    func onExec(requestID: UInt64, command: String) async throws {
        if let forced = policy.forceCommand {
            try await next.onEnv(requestID: requestID, name: "SSH_ORIGINAL_COMMAND", value: command)
            return try await next.onExec(requestID: requestID, command: forced)
        }
        guard policy.allowsCommand(command) else { throw refuse("command \(command)") }
        try await next.onExec(requestID: requestID, command: command)
    }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        if let forced = policy.forceCommand {
            try await next.onEnv(requestID: requestID, name: "SSH_ORIGINAL_COMMAND", value: name)
            return try await next.onExec(requestID: requestID, command: forced)
        }
        guard policy.allowsSubsystem(name) else { throw refuse("subsystem \(name)") }
        try await next.onSubsystem(requestID: requestID, name: name)
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        try await next.onWindowChange(requestID: requestID, size)
    }

    func onSignal(requestID: UInt64, signal: String) async throws {
        guard policy.allowsSignal(signal) else { throw refuse("signal \(signal)") }
        try await next.onSignal(requestID: requestID, signal: signal)
    }

    /// A break reaches only the backend's terminal (or the proxy's upstream): no policy of its own.
    func onBreak(requestID: UInt64, milliseconds: UInt32) async throws {
        try await next.onBreak(requestID: requestID, milliseconds: milliseconds)
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {
        await next.onUnsupportedRequest(requestID: requestID, type: type)
    }

    func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws {
        if let reason = policy.refusesX11() {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "x11-req refused: \(reason)")
            throw RequestRefused("SECURITY_FORWARDING_REFUSED", "X11 forwarding is disabled")
        }
        try await next.onX11Request(requestID: requestID, request, opener: opener)
    }

    func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws {
        if let reason = policy.refusesAgentForwarding() {
            logger.log(.info, "SECURITY_FORWARDING_REFUSED", "auth-agent-req refused: \(reason)")
            throw RequestRefused("SECURITY_FORWARDING_REFUSED", "agent forwarding is disabled")
        }
        try await next.onAgentForwardRequest(requestID: requestID, opener: opener)
    }

    func onClose() async {
        onClosed()
        await next.onClose()
    }
}
