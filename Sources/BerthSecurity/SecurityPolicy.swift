import BerthConfig
import BerthCore

/// The decisions of the security layer (docs/configuration.md, "security") as pure functions of the configuration:
/// `enable` allows all but `deny`, `filter` allows only `allow`, `disable` allows nothing.
/// The login key's restrictions narrow them further (docs/security.md, "Key options").
public struct SecurityPolicy: Sendable {
    public let config: SecurityConfig
    public let restrictions: LoginRestrictions

    public init(_ config: SecurityConfig, restrictions: LoginRestrictions = LoginRestrictions()) {
        self.config = config
        self.restrictions = restrictions
    }

    private func permits(_ filter: SecurityConfig.Filter, _ value: String) -> Bool {
        switch config.effective(filter.mode) {
        case .enable, .unset: return !filter.deny.contains(value)
        case .filter: return filter.allow.contains(value)
        case .disable: return false
        }
    }

    /// Shell and TTY have no lists, so `filter` cannot allow anything.
    private func permitsWithoutList(_ filter: SecurityConfig.Filter) -> Bool {
        config.effective(filter.mode) == .enable
    }

    /// What happens to one `env` request; `alreadySet` counts the channel's accepted requests.
    public enum EnvDecision: Equatable, Sendable {
        case allow
        case invalidName
        case denied
        case deniedByForcedCommand
        case tooLarge(limit: Int)
        case tooMany(limit: Int)
    }

    /// The name's form first, so that no list is ever matched against a name the backend would
    /// read differently; then the forced command's own list, the operator's filter, the caps.
    public func envDecision(name: String, value: String, alreadySet: Int) -> EnvDecision {
        guard EnvironmentRules.isValidName(name) else { return .invalidName }
        if forceCommand != nil, EnvironmentRules.deniedUnderForcedCommand(name: name, value: value) { return .deniedByForcedCommand }
        guard permits(config.env, name) else { return .denied }
        let limits = config.envLimits
        if limits.maxSize >= 0, name.utf8.count + value.utf8.count > limits.maxSize { return .tooLarge(limit: limits.maxSize) }
        if limits.maxVariables >= 0, alreadySet >= limits.maxVariables { return .tooMany(limit: limits.maxVariables) }
        return .allow
    }

    public func allowsEnv(_ name: String, value: String = "") -> Bool { envDecision(name: name, value: value, alreadySet: 0) == .allow }
    public func allowsCommand(_ command: String) -> Bool { permits(config.command, command) }
    public func allowsShell() -> Bool { permitsWithoutList(config.shell) }
    public func allowsSubsystem(_ name: String) -> Bool { permits(config.subsystem, name) }
    public func allowsTTY() -> Bool { permitsWithoutList(config.tty) }
    public func allowsSignal(_ name: String) -> Bool { permits(config.signal, name) }

    /// Forwarding is off unless explicitly enabled (docs/security.md: safe defaults).
    public func allowsForwarding(_ mode: SecurityConfig.Mode) -> Bool { mode == .enable }

    /// Why unix-socket forwarding is refused (`socketForwardingMode`, `socketListenMode`; OpenSSH's
    /// `no-port-forwarding` covers sockets too), or nil.
    public func refusesSocketForwarding(listen: Bool) -> String? {
        let (mode, key) = listen ? (config.forwarding.socketListenMode, "socketListenMode") : (config.forwarding.socketForwardingMode, "socketForwardingMode")
        if !allowsForwarding(mode) { return "\(key) is not enable" }
        if !restrictions.portForwarding { return "the login key does not allow port forwarding (no-port-forwarding or restrict)" }
        return nil
    }

    public func refusesX11() -> String? {
        if !allowsForwarding(config.forwarding.x11ForwardingMode) { return "x11ForwardingMode is not enable" }
        if !restrictions.x11Forwarding {
            return "the login key does not allow X11 forwarding (no-X11-forwarding, restrict, or a certificate without permit-X11-forwarding)"
        }
        return nil
    }

    public func refusesAgentForwarding() -> String? {
        if !allowsForwarding(config.forwarding.agentForwardingMode) { return "agentForwardingMode is not enable" }
        if !restrictions.agentForwarding {
            return "the login key does not allow agent forwarding (no-agent-forwarding, restrict, or a certificate without permit-agent-forwarding)"
        }
        return nil
    }

    /// Why the login key's options refuse a `direct-tcpip` to `host:port`, or nil.
    public func keyRefusesOpen(host: String, port: UInt32) -> String? {
        if !restrictions.portForwarding { return "the login key does not allow port forwarding (no-port-forwarding or restrict)" }
        if !restrictions.allowsOpen(host: host, port: port) { return "\(host):\(port) is not in the login key's permitopen" }
        return nil
    }

    /// Why the login key's options refuse a `tcpip-forward` on `host:port`, or nil.
    public func keyRefusesListen(host: String, port: UInt32) -> String? {
        if !restrictions.portForwarding { return "the login key does not allow port forwarding (no-port-forwarding or restrict)" }
        if !restrictions.allowsListen(host: host, port: port) { return "\(host):\(port) is not in the login key's permitlisten" }
        return nil
    }

    /// The configuration's `forceCommand` wins over the key's `command=`, as sshd's ForceCommand
    /// wins over authorized_keys.
    public var forceCommand: String? { config.forceCommand.isEmpty ? restrictions.forceCommand : config.forceCommand }
    public var maxSessions: Int? { config.maxSessions < 0 ? nil : config.maxSessions }
}
