/// The `security` section (docs/configuration.md, "security"), ContainerSSH's schema.
public struct SecurityConfig: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        case unset = ""
        case enable, filter, disable
    }

    public struct Filter: Sendable, Hashable {
        public var mode = Mode.unset
        public var allow: [String] = []
        public var deny: [String] = []

        public init() {}
    }

    /// Caps on client `env` requests per session channel (OpenSSH's sshd ignores requests past
    /// 128 variables too); -1 for no limit.
    public struct EnvLimits: Sendable, Hashable {
        public var maxVariables = 128
        /// Bytes of name plus value (UTF-8) of one variable.
        public var maxSize = 32768

        public init() {}
    }

    public struct Forwarding: Sendable, Hashable {
        public var forwardingMode = Mode.unset
        public var reverseForwardingMode = Mode.unset
        public var socketForwardingMode = Mode.unset
        public var socketListenMode = Mode.unset
        public var x11ForwardingMode = Mode.unset
        /// Berth's own (ContainerSSH has no agent forwarding): `auth-agent-req@openssh.com`.
        public var agentForwardingMode = Mode.unset

        public init() {}
    }

    public var defaultMode = Mode.unset
    public var forceCommand = ""
    public var env = Filter()
    public var envLimits = EnvLimits()
    public var command = Filter()
    public var shell = Filter()
    public var subsystem = Filter()
    public var tty = Filter()
    public var signal = Filter()
    public var forwarding = Forwarding()
    /// Concurrent session channels per connection; -1 for no limit.
    public var maxSessions = -1

    public init() {}

    /// An unset mode falls back to `defaultMode`, and that to `enable`.
    public func effective(_ mode: Mode) -> Mode {
        if mode != .unset { return mode }
        return defaultMode == .unset ? .enable : defaultMode
    }
}

enum SecuritySectionReader {
    static func read(_ reader: inout ObjectReader) -> SecurityConfig {
        var security = SecurityConfig()
        security.defaultMode = reader.choice("defaultMode", security.defaultMode)
        security.forceCommand = reader.string("forceCommand", "")
        security.maxSessions = reader.int("maxSessions", -1, minimum: -1)
        for (key, path, lists) in [
            ("env", \SecurityConfig.env, true), ("command", \.command, true), ("shell", \.shell, false),
            ("subsystem", \.subsystem, true), ("tty", \.tty, false), ("signal", \.signal, true),
        ] {
            var block = reader.object(key)
            var filter = SecurityConfig.Filter()
            filter.mode = block.choice("mode", filter.mode)
            if lists {
                filter.allow = block.strings("allow", [])
                if key != "command" { filter.deny = block.strings("deny", []) }
            }
            if key == "env" {
                security.envLimits.maxVariables = block.int("maxVariables", security.envLimits.maxVariables, minimum: -1)
                security.envLimits.maxSize = block.int("maxSize", security.envLimits.maxSize, minimum: -1)
            }
            block.finish()
            security[keyPath: path] = filter
        }
        var forwarding = reader.object("forwarding")
        for (key, path) in [
            ("forwardingMode", \SecurityConfig.Forwarding.forwardingMode), ("reverseForwardingMode", \.reverseForwardingMode),
            ("socketForwardingMode", \.socketForwardingMode), ("socketListenMode", \.socketListenMode),
            ("x11ForwardingMode", \.x11ForwardingMode), ("agentForwardingMode", \.agentForwardingMode),
        ] {
            security.forwarding[keyPath: path] = forwarding.choice(key, SecurityConfig.Mode.unset)
        }
        forwarding.finish()
        reader.finish()
        return security
    }
}
