import BerthCore
import Foundation

/// The HTTP client options shared by every webhook block (ContainerSSH's flattened form).
enum HTTPClientReader {
    static func read(_ reader: inout ObjectReader, required: Bool) -> HTTPClientConfig {
        var http = HTTPClientConfig()
        http.url = reader.string("url", http.url)
        if http.url.isEmpty {
            if required { reader.issues.add(reader.keyPath("url"), "required") }
        } else if !isAbsoluteHTTPURL(http.url) {
            reader.issues.add(reader.keyPath("url"), "\"\(http.url)\" is not an absolute http:// or https:// URL")
        }
        http.timeout = reader.duration("timeout", http.timeout, minimum: .milliseconds(100), allowZero: false)
        http.cacert = reader.string("cacert", http.cacert)
        http.cert = reader.string("cert", http.cert)
        http.key = reader.string("key", http.key)
        if http.cert.isEmpty != http.key.isEmpty {
            reader.issues.add(reader.keyPath(http.cert.isEmpty ? "cert" : "key"), "cert and key must be given together")
        }
        http.tlsVersion = reader.string("tlsVersion", http.tlsVersion)
        if !["1.2", "1.3"].contains(http.tlsVersion) {
            reader.issues.add(reader.keyPath("tlsVersion"), "\"\(http.tlsVersion)\" is not one of 1.2, 1.3")
        }
        http.curves = reader.strings("curves", http.curves, colonSeparated: true)
        for name in http.curves where TLSNames.curve(name) == nil {
            reader.issues.add(reader.keyPath("curves"), "\"\(name)\" is not a supported curve (x25519, secp256r1, secp384r1, secp521r1)")
        }
        http.cipher = reader.strings("cipher", http.cipher, colonSeparated: true)
        for name in http.cipher where TLSNames.cipher(name) == nil {
            reader.issues.add(reader.keyPath("cipher"), "\"\(name)\" is not a supported cipher suite (IANA or OpenSSL names of the AES-GCM and ChaCha20-Poly1305 suites)")
        }
        let tls12Suites = http.cipher.compactMap(TLSNames.cipher).filter { !TLSNames.isTLS13($0) }
        if http.tlsVersion == "1.2" && !http.cipher.isEmpty && tls12Suites.isEmpty {
            reader.issues.add(reader.keyPath("cipher"), "lists no TLS 1.2 suite, so no TLS 1.2 connection could be made (tlsVersion is 1.2)")
        }
        http.allowRedirects = reader.bool("allowRedirects", http.allowRedirects)
        return http
    }

    static func isAbsoluteHTTPURL(_ text: String) -> Bool {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else { return false }
        return scheme == "http" || scheme == "https"
    }
}

/// The `auth` section, including ContainerSSH's pre-0.5 form (`auth.url`, `auth.password: true`).
enum AuthSectionReader {
    private static let legacyHTTPKeys = ["url", "timeout", "cacert", "cert", "key", "tlsVersion", "curves", "cipher", "allowRedirects", "authTimeout"]

    static func read(_ reader: inout ObjectReader) -> AuthConfig {
        var auth = AuthConfig()
        let legacyURL = reader.has("url")
        var legacyPassword = true
        var legacyPubkey = true
        if case .bool(let flag)? = reader.value("password") {
            legacyPassword = flag
        } else {
            var password = reader.object("password")
            auth.password = readPassword(&password)
        }
        if case .bool(let flag)? = reader.value("pubkey") { legacyPubkey = flag }
        var publicKey = reader.object("publicKey")
        auth.publicKey = readPublicKey(&publicKey)
        var authz = reader.object("authz")
        auth.authz.method = authz.choice("method", auth.authz.method)
        var authzWebhook = authz.object("webhook")
        auth.authz.webhook = readWebhook(&authzWebhook, required: auth.authz.method == .webhook)
        authz.finish()
        var protection = reader.object("protection")
        auth.protection = readProtection(&protection)
        var secondFactor = reader.object("secondFactor")
        auth.secondFactor = readSecondFactor(&secondFactor)
        var gssapi = reader.object("gssapi")
        let gssapiMethod = gssapi.string("method", "")
        if !gssapiMethod.isEmpty {
            reader.issues.add(gssapi.keyPath("method"), "\"\(gssapiMethod)\" is not supported by Berth (Kerberos is not available)")
        }
        _ = gssapi.value("kerberos")
        gssapi.finish()
        var keyboard = reader.object("keyboardInteractive")
        auth.keyboardInteractive = readKeyboardInteractive(&keyboard)
        if legacyURL {
            var legacy = WebhookConfig()
            legacy.http = HTTPClientReader.read(&reader, required: true)
            legacy.authTimeout = reader.duration("authTimeout", legacy.authTimeout, minimum: .milliseconds(100), allowZero: false)
            reader.issues.warn("CONFIG_AUTH_URL_DEPRECATED: auth.url is deprecated; use auth.password.webhook.url and auth.publicKey.webhook.url")
            if auth.password.webhook.http.url.isEmpty, legacyPassword, auth.password.method == .disabled {
                auth.password.method = .webhook
                auth.password.webhook = legacy
            }
            if auth.publicKey.webhook.http.url.isEmpty, legacyPubkey, auth.publicKey.method == .disabled {
                auth.publicKey.method = .webhook
                auth.publicKey.webhook = legacy
            }
        }
        reader.finish()
        if auth.password.method == .disabled && auth.publicKey.method == .disabled && auth.publicKey.trustedUserCAKeys.isEmpty
            && auth.keyboardInteractive.method == .disabled
        {
            reader.issues.add(
                "auth", "no authentication method configured, please configure at least one (auth.password.method, auth.publicKey.method or auth.publicKey.trustedUserCAKeys)")
        }
        return auth
    }

    private static func readKeyboardInteractive(_ reader: inout ObjectReader) -> KeyboardInteractiveConfig {
        var config = KeyboardInteractiveConfig()
        config.method = reader.choice("method", config.method)
        config.passwordPrompt = reader.bool("passwordPrompt", config.passwordPrompt)
        if config.method == .oauth2 {
            var oauth2 = reader.object("oauth2")
            config.oauth2 = readOAuth2(&oauth2)
        } else {
            // ContainerSSH files may keep an oauth2 block with the method off; it has no effect.
            _ = reader.value("oauth2")
        }
        reader.finish()
        return config
    }

    private static func readOAuth2(_ reader: inout ObjectReader) -> OAuth2Config {
        var config = OAuth2Config()
        config.clientId = reader.string("clientId", "")
        if config.clientId.isEmpty { reader.issues.add(reader.keyPath("clientId"), "required") }
        config.clientSecret = reader.string("clientSecret", "")
        config.provider = reader.string("provider", config.provider)
        config.authTimeout = reader.duration("authTimeout", config.authTimeout, minimum: .seconds(1), allowZero: false)
        for unsupported in ["qrCodeClients", "deviceFlowClients"] where reader.value(unsupported) != nil {
            reader.issues.add(reader.keyPath(unsupported), "not supported by Berth (the flow does not depend on the client's version)")
        }
        let providers = ["oidc", "github", "generic"]
        if !providers.contains(config.provider) {
            reader.issues.add(reader.keyPath("provider"), "\"\(config.provider)\" is not one of oidc, github, generic")
        }
        for other in providers where other != config.provider && reader.value(other) != nil {
            reader.issues.add(reader.keyPath(other), "only read with provider: \(other)")
        }
        switch config.provider {
        case "oidc":
            var oidc = reader.object("oidc")
            config.oidc = readOIDC(&oidc)
        case "github":
            var github = reader.object("github")
            config.github = readGitHub(&github)
        case "generic":
            var generic = reader.object("generic")
            config.generic = readGeneric(&generic)
        default: break
        }
        if reader.has("redirect") && !config.usesAuthorizationCode {
            reader.issues.add(reader.keyPath("redirect"), "only used by the authorization code flow (oidc.authorizationCodeFlow or provider: generic)")
        }
        var redirect = reader.object("redirect")
        config.redirect.listen = redirect.string("listen", config.redirect.listen)
        if let problem = ListenAddress.problem(config.redirect.listen) { redirect.issues.add(redirect.keyPath("listen"), problem) }
        config.redirect.webroot = redirect.string("webroot", "")
        if !config.redirect.webroot.isEmpty && !FileManager.default.fileExists(atPath: config.redirect.webroot + "/index.html") {
            redirect.issues.add(redirect.keyPath("webroot"), "\"\(config.redirect.webroot)\" has no index.html")
        }
        redirect.finish()
        reader.finish()
        return config
    }

    private static func readRedirectURI(_ reader: inout ObjectReader, required: Bool) -> String {
        let uri = reader.string("redirectURI", "")
        if uri.isEmpty {
            if required { reader.issues.add(reader.keyPath("redirectURI"), "required for the authorization code flow (the address of the redirect page)") }
        } else if !HTTPClientReader.isAbsoluteHTTPURL(uri) {
            reader.issues.add(reader.keyPath("redirectURI"), "\"\(uri)\" is not an absolute http:// or https:// URL")
        }
        return uri
    }

    private static func readOIDC(_ oidc: inout ObjectReader) -> OIDCConfig {
        var config = OIDCConfig()
        config.http = HTTPClientReader.read(&oidc, required: true)
        config.deviceFlow = oidc.bool("deviceFlow", config.deviceFlow)
        config.authorizationCodeFlow = oidc.bool("authorizationCodeFlow", config.authorizationCodeFlow)
        config.redirectURI = readRedirectURI(&oidc, required: config.authorizationCodeFlow)
        if !config.deviceFlow && !config.authorizationCodeFlow {
            oidc.issues.add(oidc.keyPath("deviceFlow"), "one of deviceFlow and authorizationCodeFlow must be true")
        }
        config.usernameField = oidc.string("usernameField", config.usernameField)
        config.extraScopes = oidc.strings("extraScopes", [])
        config.enforceScopes = oidc.bool("enforceScopes", false)
        oidc.finish()
        return config
    }

    private static func readGeneric(_ generic: inout ObjectReader) -> GenericOAuth2Config {
        var config = GenericOAuth2Config()
        config.authorizeEndpointURL = generic.string("authorizeEndpointURL", "")
        if config.authorizeEndpointURL.isEmpty {
            generic.issues.add(generic.keyPath("authorizeEndpointURL"), "required")
        } else if !HTTPClientReader.isAbsoluteHTTPURL(config.authorizeEndpointURL) {
            generic.issues.add(generic.keyPath("authorizeEndpointURL"), "\"\(config.authorizeEndpointURL)\" is not an absolute http:// or https:// URL")
        }
        var token = generic.object("tokenEndpoint")
        config.tokenEndpoint = HTTPClientReader.read(&token, required: true)
        token.finish()
        config.redirectURI = readRedirectURI(&generic, required: true)
        generic.finish()
        return config
    }

    private static func readGitHub(_ github: inout ObjectReader) -> GitHubConfig {
        var config = GitHubConfig()
        var http = HTTPClientReader.read(&github, required: false)
        if http.url.isEmpty { http.url = config.http.url }
        if !github.has("timeout") { http.timeout = config.http.timeout }
        config.http = http
        config.apiURL = github.string("apiurl", config.apiURL)
        if !HTTPClientReader.isAbsoluteHTTPURL(config.apiURL) {
            github.issues.add(github.keyPath("apiurl"), "\"\(config.apiURL)\" is not an absolute http:// or https:// URL")
        }
        config.enforceUsername = github.bool("enforceUsername", config.enforceUsername)
        config.requireOrgMembership = github.string("requireOrgMembership", "")
        config.require2FA = github.bool("require2FA", false)
        config.extraScopes = github.strings("extraScopes", [])
        config.enforceScopes = github.bool("enforceScopes", false)
        for flow in ["deviceFlow", "authorizationCodeFlow", "redirectURI"] where github.value(flow) != nil {
            github.issues.add(github.keyPath(flow), "not a github setting (Berth signs in to GitHub with the device flow)")
        }
        github.finish()
        return config
    }

    private static func readSecondFactor(_ reader: inout ObjectReader) -> SecondFactorConfig {
        var config = SecondFactorConfig()
        config.method = reader.choice("method", config.method)
        config.required = reader.bool("required", config.required)
        var totp = reader.object("totp")
        config.digits = totp.int("digits", config.digits, minimum: 6)
        if config.digits > 8 { reader.issues.add(totp.keyPath("digits"), "must be 6, 7 or 8") }
        config.period = totp.duration("period", config.period, minimum: .seconds(1), allowZero: false)
        if config.period.nanoseconds % 1_000_000_000 != 0 { reader.issues.add(totp.keyPath("period"), "must be whole seconds") }
        config.algorithm = totp.choice("algorithm", config.algorithm)
        config.skew = totp.int("skew", config.skew, minimum: 0)
        if config.skew > 10 { reader.issues.add(totp.keyPath("skew"), "at most 10 steps either side") }
        config.metadataKey = totp.string("metadataKey", config.metadataKey)
        totp.finish()
        reader.finish()
        return config
    }

    private static func readProtection(_ reader: inout ObjectReader) -> LoginProtectionConfig {
        var config = LoginProtectionConfig()
        config.enabled = reader.bool("enabled", config.enabled)
        config.delayAfter = reader.int("delayAfter", config.delayAfter, minimum: 0)
        config.baseDelay = reader.duration("baseDelay", config.baseDelay)
        config.maxDelay = reader.duration("maxDelay", config.maxDelay)
        if config.maxDelay < config.baseDelay {
            reader.issues.add(reader.keyPath("maxDelay"), "must be at least baseDelay (\(config.baseDelay)), got \(config.maxDelay)")
        }
        config.addressThreshold = reader.int("addressThreshold", config.addressThreshold, minimum: 0)
        config.userThreshold = reader.int("userThreshold", config.userThreshold, minimum: 0)
        config.blockDuration = reader.duration("blockDuration", config.blockDuration, minimum: .seconds(1), allowZero: false)
        config.forgetAfter = reader.duration("forgetAfter", config.forgetAfter, minimum: .seconds(1), allowZero: false)
        config.allow = reader.strings("allow", config.allow)
        for (index, block) in config.allow.enumerated() where IPBlock(block) == nil {
            reader.issues.add("\(reader.keyPath("allow"))[\(index)]", "\"\(block)\" is not an IP address or CIDR block such as 10.0.0.0/8 or fd00::/8")
        }
        reader.finish()
        return config
    }

    private static func readWebhook(_ reader: inout ObjectReader, required: Bool) -> WebhookConfig {
        var webhook = WebhookConfig()
        webhook.http = HTTPClientReader.read(&reader, required: required)
        webhook.authTimeout = reader.duration("authTimeout", webhook.authTimeout, minimum: .milliseconds(100), allowZero: false)
        reader.finish()
        return webhook
    }

    private static func readPassword(_ reader: inout ObjectReader) -> PasswordAuthConfig {
        var config = PasswordAuthConfig()
        config.method = reader.choice("method", config.method)
        var webhook = reader.object("webhook")
        config.webhook = readWebhook(&webhook, required: config.method == .webhook)
        var users = reader.object("static")
        config.static = StaticUsersReader.read(&users, required: config.method == .static)
        _ = reader.value("kerberos")
        reader.finish()
        return config
    }

    private static func readPublicKey(_ reader: inout ObjectReader) -> PublicKeyAuthConfig {
        var config = PublicKeyAuthConfig()
        config.method = reader.choice("method", config.method)
        var webhook = reader.object("webhook")
        config.webhook = readWebhook(&webhook, required: config.method == .webhook)
        var users = reader.object("static")
        config.static = StaticUsersReader.read(&users, required: config.method == .static)
        var keys = reader.object("authorizedKeys")
        config.authorizedKeys.pathTemplate = keys.string("pathTemplate", "")
        if config.method == .authorizedKeys, !config.authorizedKeys.pathTemplate.contains("%u") {
            reader.issues.add(keys.keyPath("pathTemplate"), "required, and must contain %u (the username), e.g. /etc/berth/keys/%u")
        }
        keys.finish()
        config.trustedUserCAKeys = reader.strings("trustedUserCAKeys", [])
        for (index, entry) in config.trustedUserCAKeys.enumerated() {
            let path = "\(reader.keyPath("trustedUserCAKeys"))[\(index)]"
            if entry.hasPrefix("/") { continue }
            do throws(AuthorizedKeyLine.Refusal) {
                guard let line = try AuthorizedKeyLine.parse(entry), line.options == AuthorizedKeyOptions() else {
                    reader.issues.add(path, "expected \"TYPE BASE64 [comment]\" or the absolute path of a file of such lines")
                    continue
                }
                if line.keyType.contains("-cert-") { reader.issues.add(path, "a CA key must be a plain key, not a certificate") }
            } catch {
                reader.issues.add(path, "expected \"TYPE BASE64 [comment]\" or an absolute file path: \(error.reason)")
            }
        }
        reader.finish()
        return config
    }
}
