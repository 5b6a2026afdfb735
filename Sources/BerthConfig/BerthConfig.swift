/// The whole configuration file (docs/configuration.md). Sections Berth does not implement yet are kept as
/// raw values so ContainerSSH files load and a config webhook can still send them.
public struct BerthConfig: Sendable, Hashable {
    public var ssh = SSHConfig()
    public var auth = AuthConfig()
    public var configserver = ConfigServerConfig()
    public var log = LogConfig()
    /// `docker` | `kubernetes` | `sshproxy`.
    public var backend = "docker"
    public var docker = DockerConfig()
    public var security = SecurityConfig()
    public var sshproxy = SSHProxyConfig()
    public var metrics = MetricsConfig()
    public var health = HealthConfig()
    public var audit = AuditConfig()
    public var kubernetes = KubernetesConfig()
    public var persistence = PersistenceConfig()
    public var console = ConsoleConfig()
    /// Not yet modelled sections, checked only for being maps: `geoip`.
    public var rawSections: [String: ConfigValue] = [:]

    public init() {}
}

public struct SSHConfig: Sendable, Hashable {
    public var listen = "0.0.0.0:2222"
    public var serverVersion = "SSH-2.0-Berth"
    public var banner = ""
    /// File paths or inline PEM / OpenSSH private keys.
    public var hostkeys: [String] = []
    /// OpenSSH host certificates (`ssh-keygen -s … -h`), each for one of the host keys: a file
    /// path or inline `TYPE BASE64`.
    public var hostCertificates: [String] = []
    /// Where a generated host key is kept when `hostkeys` is empty.
    public var stateDirectory = "/var/lib/berth"
    /// Exactly these are offered, in this order.
    public var ciphers = SSHAlgorithmNames.defaultCiphers
    public var kex = SSHAlgorithmNames.defaultKex
    public var macs = SSHAlgorithmNames.defaultMACs
    public var hostKeyAlgorithms = SSHAlgorithmNames.defaultHostKeyAlgorithms
    public var publicKeyAlgorithms = SSHAlgorithmNames.defaultPublicKeyAlgorithms
    /// Unauthenticated connections (OpenSSH `MaxStartups`).
    public var maxStartups = MaxStartups.openSSHDefault
    /// Unauthenticated connections per source. OpenSSH has no default; Berth's 10 keeps one
    /// address from taking every `maxStartups` slot (docs/security.md).
    public var perSourceStartups = PerSourceStartups(max: 10, v4Bits: 32, v6Bits: 64)
    /// How long a graceful stop waits for sessions before ending them.
    public var shutdownTimeout = BerthDuration.seconds(20)
    /// On by default: without it a client that vanished without a FIN (laptop lid, NAT
    /// timeout) keeps its connection, and so its container, until TCP gives up hours later.
    /// 15s × `clientAliveCountMax` 3 notices it within about a minute. 0 disables.
    public var clientAliveInterval = BerthDuration.seconds(15)
    public var clientAliveCountMax = 3
    public var maxAuthTries = 6
    public var loginGraceTime = BerthDuration.seconds(120)
    /// 0 disables.
    public var idleTimeout = BerthDuration.zero
    /// 0 means unlimited.
    public var maxConnections = 0
    public var maxConnectionsPerIP = 0
    /// New connections are closed while fewer than this many descriptors are left under the
    /// open-files limit, so users already in can still open channels and forwards. 0 disables.
    public var descriptorReserve = 128

    public init() {}
}

/// TLS and transport options shared by every webhook client (ContainerSSH's HTTP client options).
public struct HTTPClientConfig: Sendable, Hashable {
    public var url = ""
    public var timeout = BerthDuration.seconds(2)
    public var cacert = ""
    public var cert = ""
    public var key = ""
    public var tlsVersion = "1.3"
    public var curves: [String] = []
    public var cipher: [String] = []
    public var allowRedirects = false

    public init() {}
}

public struct WebhookConfig: Sendable, Hashable {
    public var http = HTTPClientConfig()
    /// Budget for one authentication attempt including retries.
    public var authTimeout = BerthDuration.seconds(60)

    public init() {}
}

public struct StaticUser: Sendable, Hashable {
    public var username: String
    /// crypt(3) form: `$y$…`, `$6$…`, `$2b$…`. Empty: no password login.
    public var passwordHash: String
    /// authorized_keys lines.
    public var authorizedKeys: [String]
    /// Base32 TOTP secret for `auth.secondFactor`; empty: none enrolled.
    public var totpSecret: String

    public init(username: String, passwordHash: String = "", authorizedKeys: [String] = [], totpSecret: String = "") {
        self.username = username
        self.passwordHash = passwordHash
        self.authorizedKeys = authorizedKeys
        self.totpSecret = totpSecret
    }
}

/// Built-in user list (Berth extension, docs/configuration.md, "Built-in users"), inline or in a YAML/JSON users file.
public struct StaticUsersConfig: Sendable, Hashable {
    public var users: [StaticUser] = []
    public var usersFile = ""

    public init() {}
}

public struct AuthorizedKeysConfig: Sendable, Hashable {
    /// `%u` is replaced by the username, `%%` by `%`.
    public var pathTemplate = ""

    public init() {}
}

public enum PasswordMethod: String, Sendable, Hashable, CaseIterable {
    case disabled = ""
    case webhook
    case `static`
}

public enum PublicKeyMethod: String, Sendable, Hashable, CaseIterable {
    case disabled = ""
    case webhook
    case `static`
    case authorizedKeys = "authorizedkeys"
}

public enum AuthzMethod: String, Sendable, Hashable, CaseIterable {
    case disabled = ""
    case webhook
}

public struct PasswordAuthConfig: Sendable, Hashable {
    public var method = PasswordMethod.disabled
    public var webhook = WebhookConfig()
    public var `static` = StaticUsersConfig()

    public init() {}
}

public struct PublicKeyAuthConfig: Sendable, Hashable {
    public var method = PublicKeyMethod.disabled
    public var webhook = WebhookConfig()
    public var `static` = StaticUsersConfig()
    public var authorizedKeys = AuthorizedKeysConfig()
    /// CA keys whose user certificates sign anyone in whose name is a principal: `TYPE BASE64`
    /// inline, or the absolute path of a file of such lines.
    public var trustedUserCAKeys: [String] = []

    public init() {}
}

public struct AuthzConfig: Sendable, Hashable {
    public var method = AuthzMethod.disabled
    public var webhook = WebhookConfig()

    public init() {}
}

public struct AuthConfig: Sendable, Hashable {
    public var password = PasswordAuthConfig()
    public var publicKey = PublicKeyAuthConfig()
    public var authz = AuthzConfig()
    public var protection = LoginProtectionConfig()
    public var keyboardInteractive = KeyboardInteractiveConfig()
    public var secondFactor = SecondFactorConfig()

    public init() {}
}

/// `auth.secondFactor`: a TOTP code (RFC 6238) asked over keyboard-interactive after a password
/// or key succeeded, for users with a secret (static users' `totpSecret`, or the auth webhook's
/// metadata entry `metadataKey`). docs/security.md, "Second factor".
public struct SecondFactorConfig: Sendable, Hashable {
    public enum Method: String, Sendable, Hashable, CaseIterable {
        case disabled = ""
        case totp
    }

    public enum Algorithm: String, Sendable, Hashable, CaseIterable {
        case sha1, sha256, sha512
    }

    public var method = Method.disabled
    /// Refuse users without a secret instead of letting them in with one factor.
    public var required = false
    public var digits = 6
    public var period = BerthDuration.seconds(30)
    public var algorithm = Algorithm.sha1
    /// Time steps accepted either side of now, for clock drift and typing time.
    public var skew = 1
    public var metadataKey = "totpSecret"

    public init() {}
}

/// `auth.keyboardInteractive`: ContainerSSH's `method` (only empty: no OAuth2) and Berth's
/// `passwordPrompt`, one keyboard-interactive prompt checked by the password method, for
/// clients that offer only keyboard-interactive where passwords are asked (PuTTY, WinSCP).
public struct KeyboardInteractiveConfig: Sendable, Hashable {
    public enum Method: String, Sendable, Hashable, CaseIterable {
        case disabled = ""
        case oauth2
    }

    public var method = Method.disabled
    public var passwordPrompt = true
    public var oauth2 = OAuth2Config()

    public init() {}
}

/// ContainerSSH's `auth.keyboardInteractive.oauth2`: the `oidc` provider (device and
/// authorization-code flows), `github` (device flow) and `generic` (authorization-code flow)
/// (docs/configuration.md, "OAuth2 / OIDC").
public struct OAuth2Config: Sendable, Hashable {
    public var clientId = ""
    public var clientSecret = ""
    public var provider = "oidc"
    public var oidc = OIDCConfig()
    public var github = GitHubConfig()
    public var generic = GenericOAuth2Config()
    /// The page the provider sends the browser back to; it shows the code to paste.
    public var redirect = OAuth2RedirectConfig()

    /// Whether the sign-in can need the redirect page.
    public var usesAuthorizationCode: Bool {
        switch provider {
        case "oidc": return oidc.authorizationCodeFlow
        case "generic": return true
        default: return false
        }
    }
    /// The whole sign-in, from showing the code to the verified token.
    public var authTimeout = BerthDuration.seconds(120)

    public init() {}
}

/// `oauth2.github`: GitHub's (or GitHub Enterprise's) device flow, then its REST API for the
/// user, their two-factor status and organisation membership.
public struct GitHubConfig: Sendable, Hashable {
    /// `url`: where the device and token endpoints live (`/login/device/code`, `/login/oauth/access_token`).
    public var http: HTTPClientConfig = {
        var http = HTTPClientConfig()
        http.url = "https://github.com"
        http.timeout = .seconds(10)
        return http
    }()
    public var apiURL = "https://api.github.com"
    /// The SSH username must be the GitHub login (compared without case, as GitHub does).
    public var enforceUsername = true
    public var requireOrgMembership = ""
    public var require2FA = false
    public var extraScopes: [String] = []
    public var enforceScopes = false

    public init() {}

    /// The scopes Berth asks for: what the checks need, then the operator's.
    public var scopes: [String] {
        var scopes: [String] = []
        if !requireOrgMembership.isEmpty { scopes.append("read:org") }
        if require2FA { scopes.append("read:user") }
        for scope in extraScopes where !scopes.contains(scope) { scopes.append(scope) }
        return scopes
    }
}

public struct OAuth2RedirectConfig: Sendable, Hashable {
    /// ContainerSSH's default: the user's browser must reach it.
    public var listen = "0.0.0.0:8080"
    /// A directory whose `index.html` replaces the built-in page (`{{ .Code }}` is the code).
    public var webroot = ""

    public init() {}
}

/// `oauth2.generic`: any OAuth2 server's authorization-code flow. Nothing proves who the user
/// is beyond holding a token, so the typed username stands (docs/security.md).
public struct GenericOAuth2Config: Sendable, Hashable {
    public var authorizeEndpointURL = ""
    /// `tokenEndpoint.url` and the HTTP client options for it.
    public var tokenEndpoint = HTTPClientConfig()
    public var redirectURI = ""

    public init() {}
}

public struct OIDCConfig: Sendable, Hashable {
    /// `url` is the issuer; discovery is `url` + `.well-known/openid-configuration`.
    public var http = HTTPClientConfig()
    public var deviceFlow = false
    public var authorizationCodeFlow = false
    public var redirectURI = ""
    public var usernameField = "sub"
    public var extraScopes: [String] = []
    public var enforceScopes = false

    public init() {}
}

/// `auth.protection`: password failures slow down and then block, per address and per
/// username, across connections (docs/security.md explains the defaults).
public struct LoginProtectionConfig: Sendable, Hashable {
    public var enabled = true
    /// Failures that are answered at once; later ones wait `baseDelay`, doubling up to `maxDelay`.
    public var delayAfter = 3
    public var baseDelay = BerthDuration.seconds(1)
    public var maxDelay = BerthDuration.seconds(10)
    /// High, because one address may be a NAT in front of many people.
    public var addressThreshold = 100
    public var userThreshold = 10
    public var blockDuration = BerthDuration.seconds(600)
    /// A count with no failure for this long starts again from zero.
    public var forgetAfter = BerthDuration.seconds(1800)
    /// CIDR blocks (or addresses) that are never counted, delayed or blocked.
    public var allow: [String] = []

    public init() {}
}

public struct ConfigServerConfig: Sendable, Hashable {
    /// Empty: no config webhook.
    public var http = HTTPClientConfig()
    /// Budget for the config request including retries.
    public var configTimeout = BerthDuration.seconds(60)
    public var transmitSensitiveMetadata = false
    /// What the webhook's answer may change beyond ordinary settings; see ConfigWebhookPolicy.
    public var allow: Set<ConfigWebhookPermission> = []

    public init() {}
}

public enum LogLevel: String, Sendable, Hashable, CaseIterable, Comparable {
    case debug, info, notice, warning, error, critical, alert, emergency

    private var rank: Int { Self.allCases.firstIndex(of: self)! }
    public static func < (lhs: LogLevel, rhs: LogLevel) -> Bool { lhs.rank < rhs.rank }
}

public enum LogFormat: String, Sendable, Hashable, CaseIterable {
    case ljson, text
}

public enum LogDestination: String, Sendable, Hashable, CaseIterable {
    case stdout, file, syslog
}

public struct SyslogConfig: Sendable, Hashable {
    public var destination = "/dev/log"
    public var facility = "auth"
    public var tag = "Berth"
    public var pid = false

    public init() {}
}

public struct LogConfig: Sendable, Hashable {
    public var level = LogLevel.notice
    public var format = LogFormat.ljson
    public var destination = LogDestination.stdout
    public var file = "/var/log/berth/berth.log"
    public var syslog = SyslogConfig()

    public init() {}
}
