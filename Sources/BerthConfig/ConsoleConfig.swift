import Foundation

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
    /// Sign-in through an OpenID Connect provider; operators without a passwordHash sign in this way.
    public var oidc: ConsoleOIDCConfig?

    public init() {}

    public var tls: Bool { !cert.isEmpty }
}

/// `console.oidc`: the authorization-code flow with the console's own callback
/// (docs/console.md, "Sign-in through OIDC").
public struct ConsoleOIDCConfig: Sendable, Hashable {
    /// `url` is the issuer; discovery is at url + .well-known/openid-configuration.
    public var http = HTTPClientConfig()
    public var clientId = ""
    public var clientSecret = ""
    /// The console's callback as the browser reaches it, ending in /oidc/callback.
    public var redirectURI = ""
    public var usernameField = "sub"
    public var extraScopes: [String] = []
    /// What the sign-in page's button says: "Sign in with <providerName>".
    public var providerName = "OIDC"

    public init() {}
}

public struct ConsoleOperator: Sendable, Hashable {
    public enum Role: String, Sendable, Hashable, CaseIterable {
        case admin
        case readonly
    }

    public var username: String
    /// crypt(3): yescrypt (`$y$`), SHA-crypt (`$6$`, `$5$`) or bcrypt (`$2b$`), as `mkpasswd` makes.
    /// Empty: the operator signs in through `console.oidc` only, matched by the OIDC user name.
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
        if reader.has("oidc") {
            var oidc = reader.object("oidc")
            console.oidc = readOIDC(&oidc)
        }
        console.operators = readOperators(&reader, oidc: console.oidc != nil)
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

    private static func readOIDC(_ oidc: inout ObjectReader) -> ConsoleOIDCConfig {
        var config = ConsoleOIDCConfig()
        config.http = HTTPClientReader.read(&oidc, required: true)
        config.clientId = oidc.string("clientId", "")
        if config.clientId.isEmpty { oidc.issues.add(oidc.keyPath("clientId"), "required") }
        config.clientSecret = oidc.string("clientSecret", "")
        config.redirectURI = oidc.string("redirectURI", "")
        if config.redirectURI.isEmpty {
            oidc.issues.add(oidc.keyPath("redirectURI"), "required: the console's callback as the browser reaches it, e.g. https://console.example/oidc/callback")
        } else if !HTTPClientReader.isAbsoluteHTTPURL(config.redirectURI) || URL(string: config.redirectURI)?.path != "/oidc/callback" {
            oidc.issues.add(oidc.keyPath("redirectURI"), "\"\(config.redirectURI)\" is not an absolute http:// or https:// URL ending in /oidc/callback")
        }
        config.usernameField = oidc.string("usernameField", config.usernameField)
        if config.usernameField.isEmpty { oidc.issues.add(oidc.keyPath("usernameField"), "must name a claim") }
        config.extraScopes = oidc.strings("extraScopes", [])
        config.providerName = oidc.string("providerName", config.providerName)
        oidc.finish()
        return config
    }

    private static func readOperators(_ reader: inout ObjectReader, oidc: Bool) -> [ConsoleOperator] {
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
            if hash.isEmpty {
                if !oidc { reader.issues.add(entry.keyPath("passwordHash"), "required unless console.oidc is set (an operator without one signs in through OIDC)") }
            } else if !(hash.hasPrefix("$") && hash.dropFirst().contains("$")) {
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
