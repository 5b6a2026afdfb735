/// What the key a user signed in with allows, from its authorized_keys options (later also its
/// certificate). It can only narrow what the `security` section allows: the security layer
/// applies both (docs/security.md, "Key options").
public struct LoginRestrictions: Sendable, Hashable {
    /// `command=`: runs instead of whatever the client asks for; the request becomes
    /// `SSH_ORIGINAL_COMMAND`. The configuration's `security.forceCommand` takes precedence.
    public var forceCommand: String?
    public var pty = true
    public var portForwarding = true
    public var agentForwarding = true
    public var x11Forwarding = true
    /// `permitopen=`: where `direct-tcpip` may go; nil allows any destination.
    public var permitOpen: [ForwardPermission]?
    /// `permitlisten=`: where `tcpip-forward` may listen; nil allows any address.
    public var permitListen: [ForwardPermission]?

    public init() {}

    public var isUnrestricted: Bool { self == LoginRestrictions() }

    public func allowsOpen(host: String, port: UInt32) -> Bool {
        guard let permitOpen else { return true }
        // Literal names only: no patterns and no name lookup, as in OpenSSH.
        return permitOpen.contains { ($0.port.map { $0 == port } ?? true) && $0.host.lowercased() == host.lowercased() }
    }

    public func allowsListen(host: String, port: UInt32) -> Bool {
        guard let permitListen else { return true }
        return permitListen.contains { permission in
            guard permission.port.map({ $0 == port }) ?? true else { return false }
            return WildcardPattern.matches(permission.host.lowercased(), Self.listenHost(host))
        }
    }

    /// OpenSSH clients send `localhost` for `-R port:…` and an empty host for `-R *:port:…`,
    /// which only a `*` host admits.
    private static func listenHost(_ host: String) -> String { host.isEmpty ? "*" : host.lowercased() }
}

/// What a FIDO security key's signature asserted (PROTOCOL.u2f): touch, PIN, its counter.
public struct SecurityKeyAssertion: Sendable, Hashable {
    public var userPresent: Bool
    public var userVerified: Bool
    public var counter: UInt32

    public init(userPresent: Bool, userVerified: Bool, counter: UInt32) {
        self.userPresent = userPresent
        self.userVerified = userVerified
        self.counter = counter
    }
}

/// One `host:port` of `permitopen=`/`permitlisten=`; a nil port is `*` (any port).
public struct ForwardPermission: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: UInt32?

    public init(host: String, port: UInt32?) {
        self.host = host
        self.port = port
    }

    public var description: String {
        let shownHost = host.contains(":") ? "[\(host)]" : host
        return "\(shownHost):\(port.map(String.init) ?? "*")"
    }
}

/// `*` and `?` patterns of ssh_config(5) "PATTERNS".
public enum WildcardPattern {
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        let pattern = Array(pattern.unicodeScalars)
        let text = Array(text.unicodeScalars)
        var p = 0, t = 0
        var star = -1, resume = 0
        while t < text.count {
            if p < pattern.count, pattern[p] == "?" || pattern[p] == text[t] {
                p += 1
                t += 1
            } else if p < pattern.count, pattern[p] == "*" {
                star = p
                resume = t
                p += 1
            } else if star >= 0 {
                p = star + 1
                resume += 1
                t = resume
            } else {
                return false
            }
        }
        while p < pattern.count, pattern[p] == "*" { p += 1 }
        return p == pattern.count
    }
}
