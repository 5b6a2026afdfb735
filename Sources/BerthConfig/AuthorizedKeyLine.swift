import BerthCore
import Foundation

/// One line of an OpenSSH authorized_keys file: `[options] type base64 [comment]`, read as
/// sshd(8) "AUTHORIZED_KEYS FILE FORMAT" describes it. An option Berth does not know refuses the
/// whole line, so that a restriction is never silently dropped (docs/security.md, "Key options").
public struct AuthorizedKeyLine: Sendable, Hashable {
    public var keyType: String
    /// The key blob as written (base64).
    public var keyBlob: String
    public var options: AuthorizedKeyOptions

    public static let keyTypes: Set<String> = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-dss",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "ssh-rsa-cert-v01@openssh.com",
    ]

    /// Why a line cannot be used.
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        public let reason: String
        public init(_ reason: String) { self.reason = reason }
        public var description: String { reason }
    }

    /// nil for blank lines and comments.
    public static func parse(_ line: String) throws(Refusal) -> AuthorizedKeyLine? {
        let text = Array(line.unicodeScalars)
        var start = 0
        while start < text.count, text[start] == " " || text[start] == "\t" { start += 1 }
        guard start < text.count, text[start] != "#", text[start] != "\r" else { return nil }
        var options = AuthorizedKeyOptions()
        var cursor = start
        if !keyTypes.contains(field(text, from: start)) {
            var parser = AuthorizedKeyOptions.Parser(text: text, index: start)
            options = try parser.parse()
            cursor = parser.index
        }
        let rest = String(String.UnicodeScalarView(text[cursor...])).split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let type = rest.first.map(String.init) else { throw Refusal("no key after the options") }
        guard keyTypes.contains(type) else { throw Refusal("unknown key type \"\(type.prefix(64))\"") }
        guard rest.count >= 2 else { throw Refusal("no key data after \(type)") }
        let blob = String(rest[1])
        guard let decoded = Data(base64Encoded: blob), innerType(of: Array(decoded)) == type else {
            throw Refusal("the key data is not a base64 \(type) key")
        }
        return AuthorizedKeyLine(keyType: type, keyBlob: blob, options: options)
    }

    /// The first whitespace-separated field.
    private static func field(_ text: [Unicode.Scalar], from start: Int) -> String {
        var end = start
        while end < text.count, text[end] != " ", text[end] != "\t" { end += 1 }
        return String(String.UnicodeScalarView(text[start..<end]))
    }

    /// The type name an SSH key blob starts with (RFC 4253 §6.6).
    private static func innerType(of blob: [UInt8]) -> String? {
        guard blob.count >= 4 else { return nil }
        let length = blob[0..<4].reduce(0) { $0 << 8 | Int($1) }
        guard length <= blob.count - 4 else { return nil }
        return String(bytes: blob[4..<(4 + length)], encoding: .utf8)
    }
}

/// The options of one authorized_keys line.
public struct AuthorizedKeyOptions: Sendable, Hashable {
    /// What the session may do (command=, no-pty, restrict, permitopen=, …).
    public var restrictions = LoginRestrictions()
    /// `cert-authority`: the key is a CA for user certificates, never a login key itself.
    public var certAuthority = false
    /// `from=`: patterns the client's address must match; nil allows any address.
    public var from: [SourcePattern]?
    /// `expiry-time=`: the key is refused from this moment on.
    public var expiry: Date?
    /// `principals=`: with `cert-authority`, the names a certificate must carry.
    public var principals: [String]?
    /// `environment=`, in file order; the first value of a name wins.
    public var environment: [String: String] = [:]
    /// FIDO keys only (`no-touch-required`, `verify-required`).
    public var touchRequired = true
    public var verifyRequired = false

    public init() {}

    /// `from=`: no negated pattern may match and at least one other must (sshd(8)). Names are
    /// not looked up, so host name patterns match the address text (as sshd with UseDNS no).
    public func allowsSource(ip: String) -> Bool {
        guard let from else { return true }
        var matched = false
        for pattern in from where pattern.matches(ip: ip) {
            if pattern.negated { return false }
            matched = true
        }
        return matched
    }

    public func isExpired(at now: Date) -> Bool { expiry.map { now >= $0 } ?? false }

    /// One entry of `from=`: an address block (`10.0.0.0/8`) or a wildcard pattern (`192.168.1.*`).
    public struct SourcePattern: Sendable, Hashable {
        public var negated: Bool
        public var block: IPBlock?
        public var glob: String

        public func matches(ip: String) -> Bool {
            if let block { return IPAddressBytes(ip).map(block.contains) ?? false }
            return WildcardPattern.matches(glob.lowercased(), ip.lowercased())
        }
    }

    struct Parser {
        let text: [Unicode.Scalar]
        var index: Int
        private var seen: Set<String> = []

        init(text: [Unicode.Scalar], index: Int) {
            self.text = text
            self.index = index
        }

        typealias Refusal = AuthorizedKeyLine.Refusal

        mutating func parse() throws(Refusal) -> AuthorizedKeyOptions {
            var options = AuthorizedKeyOptions()
            while true {
                let name = readName()
                guard !name.isEmpty else { throw Refusal("empty option") }
                if index < text.count, text[index] == "=" {
                    index += 1
                    try apply(value: try dequote(name), of: name.lowercased(), to: &options)
                } else {
                    try apply(flag: name.lowercased(), to: &options)
                }
                if index >= text.count || text[index] == " " || text[index] == "\t" { break }
                guard text[index] == "," else { throw Refusal("unexpected character after option \"\(name)\"") }
                index += 1
                guard index < text.count, text[index] != " ", text[index] != "\t" else { throw Refusal("options end with a comma") }
            }
            return options
        }

        private mutating func readName() -> String {
            let start = index
            while index < text.count, !",= \t\"".unicodeScalars.contains(text[index]) { index += 1 }
            return String(String.UnicodeScalarView(text[start..<index]))
        }

        /// A double-quoted value; `\"` is a quote, every other character is itself.
        private mutating func dequote(_ name: String) throws(Refusal) -> String {
            guard index < text.count, text[index] == "\"" else { throw Refusal("the value of \(name)= must be in double quotes") }
            index += 1
            var value = String.UnicodeScalarView()
            while index < text.count, text[index] != "\"" {
                if text[index] == "\\", index + 1 < text.count, text[index + 1] == "\"" { index += 1 }
                value.append(text[index])
                index += 1
            }
            guard index < text.count else { throw Refusal("the value of \(name)= has no closing quote") }
            index += 1
            return String(value)
        }

        private mutating func once(_ name: String) throws(Refusal) {
            guard seen.insert(name).inserted else { throw Refusal("\(name)= given twice") }
        }

        private func apply(flag name: String, to options: inout AuthorizedKeyOptions) throws(Refusal) {
            let negated = name.hasPrefix("no-")
            let base = negated ? String(name.dropFirst(3)) : name
            switch (base, negated) {
            case ("restrict", false):
                options.restrictions.pty = false
                options.restrictions.portForwarding = false
                options.restrictions.agentForwarding = false
                options.restrictions.x11Forwarding = false
            case ("cert-authority", false): options.certAuthority = true
            case ("port-forwarding", _): options.restrictions.portForwarding = !negated
            case ("agent-forwarding", _): options.restrictions.agentForwarding = !negated
            case ("x11-forwarding", _): options.restrictions.x11Forwarding = !negated
            case ("pty", _): options.restrictions.pty = !negated
            case ("touch-required", _): options.touchRequired = !negated
            case ("verify-required", _): options.verifyRequired = !negated
            // Berth runs no ~/.ssh/rc, so there is nothing to allow or forbid.
            case ("user-rc", _): break
            default: throw Refusal("unknown option \"\(name.prefix(64))\"")
            }
        }

        private mutating func apply(value: String, of name: String, to options: inout AuthorizedKeyOptions) throws(Refusal) {
            switch name {
            case "command":
                try once(name)
                options.restrictions.forceCommand = value
            case "principals":
                try once(name)
                let names = value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
                guard !names.contains(where: \.isEmpty) else { throw Refusal("principals= has an empty name") }
                options.principals = names
            case "from":
                try once(name)
                options.from = try Self.sourcePatterns(value)
            case "expiry-time":
                guard let moment = Self.absoluteTime(value) else { throw Refusal("expiry-time=\"\(value.prefix(32))\" is not YYYYMMDD[HHMM[SS]][Z]") }
                options.expiry = min(options.expiry ?? moment, moment)
            case "environment":
                guard let equals = value.firstIndex(of: "=") else { throw Refusal("environment=\"\(value.prefix(32))\" has no NAME=") }
                let variable = String(value[..<equals])
                guard Self.isVariableName(variable) else { throw Refusal("environment= name \"\(variable.prefix(32))\" is not [A-Za-z_][A-Za-z0-9_]*") }
                if options.environment[variable] == nil { options.environment[variable] = String(value[value.index(after: equals)...]) }
            case "permitopen":
                options.restrictions.permitOpen = (options.restrictions.permitOpen ?? []) + [try Self.permission(value, name: name, barePort: false)]
            case "permitlisten":
                options.restrictions.permitListen = (options.restrictions.permitListen ?? []) + [try Self.permission(value, name: name, barePort: true)]
            case "tunnel": throw Refusal("tunnel= is not supported (Berth has no tun forwarding)")
            default: throw Refusal("unknown option \"\(name.prefix(64))=\"")
            }
        }

        static func sourcePatterns(_ value: String) throws(Refusal) -> [SourcePattern] {
            var patterns: [SourcePattern] = []
            for entry in value.split(separator: ",", omittingEmptySubsequences: false) {
                let negated = entry.hasPrefix("!")
                let body = String(negated ? entry.dropFirst() : entry)
                guard !body.isEmpty else { throw Refusal("from= has an empty pattern") }
                if body.contains("/") {
                    guard let block = IPBlock(body) else { throw Refusal("from= \"\(body.prefix(64))\" is not an address block") }
                    patterns.append(SourcePattern(negated: negated, block: block, glob: body))
                } else {
                    patterns.append(SourcePattern(negated: negated, block: nil, glob: body))
                }
            }
            return patterns
        }

        /// `host:port` (`[v6]:port`); `port` may be `*`. permitlisten's bare port means any host.
        static func permission(_ value: String, name: String, barePort: Bool) throws(Refusal) -> ForwardPermission {
            var host: Substring
            var port: Substring
            if value.hasPrefix("[") {
                guard let close = value.firstIndex(of: "]"), value[value.index(after: close)...].hasPrefix(":") else {
                    throw Refusal("\(name)=\"\(value.prefix(64))\" is not host:port")
                }
                host = value[value.index(after: value.startIndex)..<close]
                port = value[value.index(close, offsetBy: 2)...]
            } else if let colon = value.lastIndex(of: ":") {
                host = value[..<colon]
                port = value[value.index(after: colon)...]
                guard !host.contains(":") else { throw Refusal("\(name)=\"\(value.prefix(64))\": put an IPv6 address in brackets") }
            } else if barePort {
                host = "*"
                port = Substring(value)
            } else {
                throw Refusal("\(name)=\"\(value.prefix(64))\" is not host:port")
            }
            guard !host.isEmpty else { throw Refusal("\(name)=\"\(value.prefix(64))\" has no host") }
            if port == "*" { return ForwardPermission(host: String(host), port: nil) }
            guard let number = UInt32(port), (1...65535).contains(number) else {
                throw Refusal("\(name)=\"\(value.prefix(64))\" has no valid port")
            }
            return ForwardPermission(host: String(host), port: number)
        }

        /// YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS; local time unless it ends in `Z` or `UTC`.
        static func absoluteTime(_ value: String) -> Date? {
            var digits = Substring(value)
            var zone = TimeZone.current
            if digits.uppercased().hasSuffix("UTC") {
                digits = digits.dropLast(3)
                zone = TimeZone(identifier: "UTC")!
            } else if digits.uppercased().hasSuffix("Z") {
                digits = digits.dropLast()
                zone = TimeZone(identifier: "UTC")!
            }
            guard [8, 12, 14].contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
            let numbers = Array(digits).map { Int(String($0))! }
            func number(_ from: Int, _ count: Int) -> Int { numbers[from..<(from + count)].reduce(0) { $0 * 10 + $1 } }
            var parts = DateComponents()
            parts.year = number(0, 4)
            parts.month = number(4, 2)
            parts.day = number(6, 2)
            parts.hour = digits.count >= 12 ? number(8, 2) : 0
            parts.minute = digits.count >= 12 ? number(10, 2) : 0
            parts.second = digits.count == 14 ? number(12, 2) : 0
            guard (1...12).contains(parts.month!), (1...31).contains(parts.day!), parts.hour! < 24, parts.minute! < 60, parts.second! < 61 else { return nil }
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = zone
            guard let date = calendar.date(from: parts), calendar.component(.day, from: date) == parts.day else { return nil }
            return date
        }

        static func isVariableName(_ name: String) -> Bool {
            guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
            return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
        }
    }
}
