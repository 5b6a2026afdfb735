/// `console` (docs/configuration.md, "console"): the operator console, a web application on a
/// listener of its own. Off by default.
public struct ConsoleConfig: Sendable, Hashable {
    public var enable = false
    /// Loopback: the console can watch and end every user's session; exposing it is the
    /// operator's choice, and only with TLS (`cert`/`key`).
    public var listen = "127.0.0.1:7080"
    /// Server certificate chain and key, PEM text or a file path; both or neither.
    public var cert = ""
    public var key = ""
    public var tlsVersion = "1.3"
    public var operators: [ConsoleOperator] = []
    /// Tell users when an operator starts watching their session.
    public var showWatching = true
    /// Where the console reads xterm.js (Debian's libjs-xterm).
    public var xtermDirectory = "/usr/share/javascript/xterm"

    public init() {}

    public var tls: Bool { !cert.isEmpty }
}

public struct ConsoleOperator: Sendable, Hashable {
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case admin
        case readonly
    }

    public var username: String
    /// crypt(3): yescrypt (`$y$`), SHA-crypt (`$6$`, `$5$`) or bcrypt (`$2b$`), as `mkpasswd` makes.
    public var passwordHash: String
    public var role: Role

    public init(username: String, passwordHash: String, role: Role) {
        self.username = username
        self.passwordHash = passwordHash
        self.role = role
    }
}

enum ConsoleSectionReader {
    static func read(_ reader: inout ObjectReader) -> ConsoleConfig {
        var console = ConsoleConfig()
        console.enable = reader.bool("enable", console.enable)
        console.listen = reader.string("listen", console.listen)
        if let problem = ListenAddress.problem(console.listen) { reader.issues.add(reader.keyPath("listen"), problem) }
        console.cert = reader.string("cert", console.cert)
        console.key = reader.string("key", console.key)
        if console.cert.isEmpty != console.key.isEmpty {
            reader.issues.add(reader.keyPath(console.cert.isEmpty ? "cert" : "key"), "cert and key go together: set both or neither")
        }
        console.tlsVersion = reader.string("tlsVersion", console.tlsVersion)
        if !["1.2", "1.3"].contains(console.tlsVersion) {
            reader.issues.add(reader.keyPath("tlsVersion"), "\"\(console.tlsVersion)\" is not one of 1.2, 1.3")
        }
        console.showWatching = reader.bool("showWatching", console.showWatching)
        console.xtermDirectory = reader.string("xtermDirectory", console.xtermDirectory)
        console.operators = readOperators(&reader)
        reader.finish()
        guard console.enable else { return console }
        if console.operators.isEmpty {
            reader.issues.add(reader.keyPath("operators"), "the console is enabled but lists no operator who could sign in")
        }
        if !console.tls, !isLoopback(console.listen) {
            reader.issues.add(
                reader.keyPath("listen"), "\"\(console.listen)\" is not a loopback address: the console sends passwords and session output, so it needs cert and key there")
        }
        return console
    }

    private static func readOperators(_ reader: inout ObjectReader) -> [ConsoleOperator] {
        guard let list = reader.value("operators") else { return [] }
        guard case .array(let items) = list else {
            reader.issues.add(reader.keyPath("operators"), "expected a list of operators, got \(list.brief)")
            return []
        }
        var seen: Set<String> = []
        return items.enumerated().compactMap { index, item in
            var entry = ObjectReader(item, path: "\(reader.keyPath("operators"))[\(index)]", issues: reader.issues)
            let name = entry.string("username", "")
            let hash = entry.string("passwordHash", "")
            let role = entry.choice("role", ConsoleOperator.Role.readonly)
            entry.finish()
            if name.isEmpty { reader.issues.add(entry.keyPath("username"), "required") }
            if !seen.insert(name).inserted { reader.issues.add(entry.keyPath("username"), "\"\(name)\" is listed twice") }
            if !(hash.hasPrefix("$") && hash.dropFirst().contains("$")) {
                reader.issues.add(entry.keyPath("passwordHash"), "must be a crypt(3) hash such as $y$… or $6$… (make one with mkpasswd)")
            }
            return name.isEmpty ? nil : ConsoleOperator(username: name, passwordHash: hash, role: role)
        }
    }

    static func isLoopback(_ listen: String) -> Bool {
        guard let colon = listen.lastIndex(of: ":") else { return false }
        let host = listen[..<colon]
        return host == "localhost" || host == "[::1]" || host.hasPrefix("127.")
    }
}
