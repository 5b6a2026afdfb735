import Testing
@testable import BerthConfig

@Suite struct ConfigReaderTests {
    private let minimalAuth = minimalAuthYAML

    private func load(_ yaml: String, environment: [String: String] = [:]) throws -> (BerthConfig, [String]) {
        try readConfig(yaml, environment: environment)
    }

    private func problems(_ yaml: String) -> [String] { configProblems(yaml) }

    @Test func defaultsApplyToAMinimalFile() throws {
        let (config, warnings) = try load(minimalAuth)
        #expect(warnings.isEmpty)
        #expect(config.ssh.listen == "0.0.0.0:2222")
        #expect(config.ssh.maxAuthTries == 6)
        #expect(config.auth.password.webhook.authTimeout == .seconds(60))
        #expect(config.auth.password.webhook.http.timeout == .seconds(2))
        #expect(config.log.level == .notice)
        #expect(config.backend == "docker")
    }

    @Test func unknownKeysAndTypeErrorsAreAllReportedWithPaths() {
        let found = problems(minimalAuth + "ssh:\n  listn: x\n  clientAliveCountMax: many\n  loginGraceTime: soon\nlog:\n  format: xml\n")
        #expect(found.contains("ssh.listn: unknown key"))
        #expect(found.contains("ssh.clientAliveCountMax: expected an integer, got \"many\""))
        #expect(found.contains { $0.hasPrefix("ssh.loginGraceTime: \"soon\" is not a duration") })
        #expect(found.contains("log.format: \"xml\" is not one of ljson, text"))
        #expect(found.count == 4)
    }

    @Test func validationRules() {
        #expect(problems("auth: {}\n").contains { $0.contains("no authentication method configured") })
        #expect(problems("auth:\n  password:\n    method: webhook\n").contains("auth.password.webhook.url: required"))
        #expect(problems(minimalAuth + "ssh:\n  serverVersion: OpenSSH\n").contains { $0.hasPrefix("ssh.serverVersion:") })
        #expect(problems(minimalAuth + "ssh:\n  clientAliveInterval: 100ms\n").contains { $0.hasPrefix("ssh.clientAliveInterval: must be at least 1s") })
        #expect(problems(minimalAuth + "ssh:\n  listen: \"::1:22\"\n").contains { $0.contains("brackets") })
        #expect(problems(minimalAuth + "ssh:\n  ciphers: [arcfour256]\n").contains { $0.hasPrefix("ssh.ciphers: \"arcfour256\" is not supported") })
        #expect(problems(minimalAuth + "backend: podman\n") == ["backend: \"podman\" is not one of docker, kubernetes, sshproxy"])
        #expect(problems(minimalAuth + "backend: echo\n").contains { $0.contains("BERTH_ENABLE_TEST_BACKEND") })
        #expect(problems("auth:\n  publicKey:\n    method: authorizedkeys\n").contains { $0.hasPrefix("auth.publicKey.authorizedKeys.pathTemplate: required") })
        #expect(
            problems("auth:\n  password:\n    method: static\n    static:\n      users:\n        - username: a\n          passwordHash: plain\n").contains {
                $0.hasPrefix("auth.password.static.users[0].passwordHash:")
            })
        #expect(
            problems("auth:\n  password:\n    method: webhook\n    webhook: {url: \"http://h\", cert: /c.pem}\n").contains(
                "auth.password.webhook.key: cert and key must be given together"))
        let oauth2 = problems("auth:\n  keyboardInteractive:\n    method: oauth2\n  password: {method: webhook, webhook: {url: \"http://h\"}}\n")
        #expect(oauth2.contains("auth.keyboardInteractive.oauth2.clientId: required"))
        #expect(oauth2.contains("auth.keyboardInteractive.oauth2.oidc.url: required"))
        #expect(oauth2.contains { $0.hasPrefix("auth.keyboardInteractive.oauth2.oidc.deviceFlow: one of deviceFlow and authorizationCodeFlow must be true") })
        #expect(
            problems("auth:\n  gssapi:\n    method: kerberos\n  password: {method: webhook, webhook: {url: \"http://h\"}}\n").contains { $0.contains("not supported by Berth") })
        let totp = problems(minimalAuth + "  secondFactor:\n    method: totp\n    totp: {digits: 9, period: 1500ms, algorithm: md5}\n")
        #expect(totp.contains("auth.secondFactor.totp.digits: must be 6, 7 or 8"))
        #expect(totp.contains("auth.secondFactor.totp.period: must be whole seconds"))
        #expect(totp.contains { $0.hasPrefix("auth.secondFactor.totp.algorithm:") })
    }

    @Test func githubProviderDefaultsAndScopes() throws {
        let github = try load(
            "auth:\n  keyboardInteractive:\n    method: oauth2\n    oauth2:\n      clientId: c\n      provider: github\n      github: {requireOrgMembership: lab, require2FA: true, extraScopes: [repo, read:org]}\n"
        ).0.auth.keyboardInteractive.oauth2.github
        #expect(github.http.url == "https://github.com" && github.apiURL == "https://api.github.com")
        #expect(github.http.timeout == .seconds(10) && github.enforceUsername)
        #expect(github.scopes == ["read:org", "read:user", "repo"])
        let wrong = problems("auth:\n  keyboardInteractive:\n    method: oauth2\n    oauth2: {clientId: c, provider: github, github: {url: \"ftp://x\"}, oidc: {}}\n")
        #expect(wrong.contains { $0.hasPrefix("auth.keyboardInteractive.oauth2.github.url:") })
        #expect(wrong.contains("auth.keyboardInteractive.oauth2.oidc: only read with provider: oidc"))
    }

    @Test func algorithmListsAreCheckedAndKeptInOrder() throws {
        let (config, _) = try load(
            minimalAuth
                + "ssh:\n  ciphers: [aes128-ctr, chacha20-poly1305@openssh.com]\n  kex: [diffie-hellman-group14-sha1]\n  macs: [hmac-sha1]\n  hostKeyAlgorithms: [ssh-rsa, rsa-sha2-256]\n  publicKeyAlgorithms: [ssh-ed25519]\n"
        )
        #expect(config.ssh.ciphers == ["aes128-ctr", "chacha20-poly1305@openssh.com"])
        #expect(config.ssh.kex == ["diffie-hellman-group14-sha1"])
        #expect(config.ssh.macs == ["hmac-sha1"])
        #expect(config.ssh.hostKeyAlgorithms == ["ssh-rsa", "rsa-sha2-256"])
        #expect(config.ssh.publicKeyAlgorithms == ["ssh-ed25519"])
        #expect(try load(minimalAuth).0.ssh.kex == SSHAlgorithmNames.defaultKex)
        // ContainerSSH's rules: an empty cipher list means the defaults, an empty kex or mac list is an error.
        #expect(try load(minimalAuth + "ssh:\n  ciphers: []\n").0.ssh.ciphers == SSHAlgorithmNames.defaultCiphers)
        #expect(problems(minimalAuth + "ssh:\n  kex: []\n").contains { $0.hasPrefix("ssh.kex: must list at least one") })
        #expect(problems(minimalAuth + "ssh:\n  macs: [hmac-sha1-96]\n").contains { $0.hasPrefix("ssh.macs: \"hmac-sha1-96\" is not supported") })
        #expect(problems(minimalAuth + "ssh:\n  hostKeyAlgorithms: [ssh-dss]\n").contains { $0.hasPrefix("ssh.hostKeyAlgorithms: \"ssh-dss\" is not supported") })
    }

    @Test func maxStartupsTakesOpenSSHSyntax() throws {
        #expect(try load(minimalAuth).0.ssh.maxStartups == MaxStartups(start: 10, rate: 30, full: 100))
        #expect(try load(minimalAuth + "ssh:\n  maxStartups: \"5:50:20\"\n").0.ssh.maxStartups == MaxStartups(start: 5, rate: 50, full: 20))
        #expect(try load(minimalAuth + "ssh:\n  maxStartups: 7\n").0.ssh.maxStartups == MaxStartups(start: 7, rate: 100, full: 7))
        #expect(try load(minimalAuth + "ssh:\n  maxStartups: 0\n").0.ssh.maxStartups.isUnlimited)
        #expect(problems(minimalAuth + "ssh:\n  maxStartups: \"10:130:100\"\n").contains { $0.hasPrefix("ssh.maxStartups:") })
        #expect(problems(minimalAuth + "ssh:\n  maxStartups: \"20:30:10\"\n").contains { $0.hasPrefix("ssh.maxStartups:") })
        #expect(problems(minimalAuth + "ssh:\n  maxStartups: lots\n").contains { $0.hasPrefix("ssh.maxStartups: \"lots\" is not start:rate:full") })
    }

    @Test func perSourceStartupsAndDescriptorReserve() throws {
        let defaults = try load(minimalAuth).0.ssh
        #expect(defaults.perSourceStartups == PerSourceStartups(max: 10, v4Bits: 32, v6Bits: 64))
        #expect(defaults.descriptorReserve == 128)
        let set = try load(minimalAuth + "ssh:\n  perSourceMaxStartups: 3\n  perSourceNetBlockSize: \"24:56\"\n  descriptorReserve: 0\n").0.ssh
        #expect(set.perSourceStartups == PerSourceStartups(max: 3, v4Bits: 24, v6Bits: 56))
        #expect(set.descriptorReserve == 0)
        #expect(problems(minimalAuth + "ssh:\n  perSourceNetBlockSize: \"40\"\n").contains { $0.hasPrefix("ssh.perSourceNetBlockSize: \"40\" is not") })
        #expect(problems(minimalAuth + "ssh:\n  perSourceMaxStartups: -1\n").contains { $0.hasPrefix("ssh.perSourceMaxStartups: must be at least 0") })
        #expect(problems(minimalAuth + "ssh:\n  descriptorReserve: many\n").contains { $0.hasPrefix("ssh.descriptorReserve:") })
    }

    @Test func loginProtectionIsOnByDefaultAndChecked() throws {
        let defaults = try load(minimalAuth).0.auth.protection
        #expect(defaults.enabled && defaults.addressThreshold == 100 && defaults.userThreshold == 10 && defaults.allow.isEmpty)
        let set = try load(
            minimalAuth
                + "  protection:\n    enabled: false\n    delayAfter: 0\n    baseDelay: 100ms\n    maxDelay: 2s\n    addressThreshold: 5\n    userThreshold: 0\n    blockDuration: 5s\n    forgetAfter: 1m\n    allow: [10.0.0.0/8, \"::1\"]\n"
        ).0.auth.protection
        #expect(!set.enabled && set.delayAfter == 0 && set.baseDelay == .milliseconds(100) && set.maxDelay == .seconds(2))
        #expect(set.addressThreshold == 5 && set.userThreshold == 0 && set.blockDuration == .seconds(5) && set.forgetAfter == .seconds(60))
        #expect(set.allow == ["10.0.0.0/8", "::1"])
        #expect(
            problems(minimalAuth + "  protection:\n    allow: [10.0.0.0/33, example.com]\n") == [
                "auth.protection.allow[0]: \"10.0.0.0/33\" is not an IP address or CIDR block such as 10.0.0.0/8 or fd00::/8",
                "auth.protection.allow[1]: \"example.com\" is not an IP address or CIDR block such as 10.0.0.0/8 or fd00::/8",
            ])
        #expect(problems(minimalAuth + "  protection:\n    baseDelay: 5s\n    maxDelay: 1s\n").contains { $0.hasPrefix("auth.protection.maxDelay: must be at least baseDelay") })
        #expect(problems(minimalAuth + "  protection:\n    blockDuration: 0s\n").contains { $0.hasPrefix("auth.protection.blockDuration:") })
        #expect(problems(minimalAuth + "  protection:\n    treshold: 5\n") == ["auth.protection.treshold: unknown key"])
    }

    @Test func metricsAndHealthListenOnLoopbackByDefault() throws {
        let config = try load(minimalAuth).0
        #expect(config.metrics.listen == "127.0.0.1:9100")
        #expect(config.health.listen == "127.0.0.1:7000")
    }

    @Test func legacyAuthURLBecomesBothWebhooksWithAWarning() throws {
        let (config, warnings) = try load("auth:\n  url: http://auth.example:8080\n  authTimeout: 10s\n")
        #expect(config.auth.password.method == .webhook)
        #expect(config.auth.publicKey.method == .webhook)
        #expect(config.auth.publicKey.webhook.http.url == "http://auth.example:8080")
        #expect(config.auth.password.webhook.authTimeout == .seconds(10))
        #expect(warnings.contains { $0.hasPrefix("CONFIG_AUTH_URL_DEPRECATED") })
    }

    /// Keepalive is on by default so a half-open connection (client gone without a FIN) is
    /// noticed and its container removed within about a minute; `0s` still turns it off.
    @Test func keepaliveIsOnByDefaultAndZeroTurnsItOff() throws {
        let defaults = try ConfigLoader.parse(minimalAuth, format: .yaml, source: "a.yaml").config.ssh
        #expect(defaults.clientAliveInterval == .seconds(15))
        #expect(defaults.clientAliveCountMax == 3)
        let off = try ConfigLoader.parse(minimalAuth + "ssh:\n  clientAliveInterval: 0s\n", format: .yaml, source: "a.yaml").config.ssh
        #expect(off.clientAliveInterval == .zero)
    }

    @Test func jsonAndYAMLReadTheSame() throws {
        let yaml = try ConfigLoader.parse(minimalAuth + "ssh:\n  clientAliveInterval: 30s\n  maxAuthTries: 3\n", format: .yaml, source: "a.yaml")
        let json = try ConfigLoader.parse(
            #"{"ssh": {"clientAliveInterval": 30000000000, "maxAuthTries": 3}, "auth": {"password": {"method": "webhook", "webhook": {"url": "http://127.0.0.1:8080"}}}}"#,
            format: .json, source: "a.json")
        #expect(yaml.config == json.config)
    }

    @Test func renderedConfigReadsBackUnchanged() throws {
        let source = minimalAuth + "  protection: {allow: [192.0.2.0/24], baseDelay: 250ms}\nssh:\n  banner: \"0\"\n  idleTimeout: 1h2m3s\n  perSourceNetBlockSize: \"24:48\"\n"
        let original = try ConfigLoader.parse(source + "log: {level: crit}\nmetrics: {enable: true}\n", format: .yaml, source: "a.yaml")
        let rendered = ConfigRenderer.yaml(original.config)
        let reread = try ConfigLoader.parse(rendered, format: .yaml, source: "rendered.yaml")
        #expect(reread.config == original.config)
        let fromJSON = try ConfigLoader.parse(ConfigRenderer.json(original.config), format: .json, source: "rendered.json")
        #expect(fromJSON.config == original.config)
        #expect(original.config.log.level == .critical)
        #expect(original.config.metrics.enable)
    }

    @Test func mergeReplacesListsAndScalarsAndMergesMaps() throws {
        let base = try ConfigValue.parse(
            "docker:\n  execution:\n    mode: connection\n    shellCommand: [/bin/bash]\n    container: {image: a, user: root}\n", format: .yaml, source: "base")
        let overlay = try ConfigValue.parse(#"{"docker": {"execution": {"shellCommand": ["/bin/sh"], "container": {"image": "b"}}}}"#, format: .json, source: "overlay")
        let merged = base.merging(overlay)
        let execution = merged["docker"]?["execution"]
        #expect(execution?["mode"] == .string("connection"))
        #expect(execution?["shellCommand"] == .array([.string("/bin/sh")]))
        #expect(execution?["container"]?["image"] == .string("b"))
        #expect(execution?["container"]?["user"] == .string("root"))
    }

    @Test(arguments: [
        ("30s", Int64(30_000_000_000), "30s"), ("1m30s", 90_000_000_000, "1m30s"), ("250ms", 250_000_000, "250ms"),
        ("1h", 3_600_000_000_000, "1h"), ("1.5s", 1_500_000_000, "1.5s"), ("100us", 100_000, "100us"), ("0", 0, "0s"), ("2h0m5s", 7_205_000_000_000, "2h5s"),
    ])
    func durations(text: String, nanoseconds: Int64, rendered: String) {
        #expect(DurationFormat.parse(text) == BerthDuration(nanoseconds: nanoseconds))
        #expect(DurationFormat.render(BerthDuration(nanoseconds: nanoseconds)) == rendered)
    }

    @Test(arguments: ["", "-1s", "5", "1x", "s", "1.2.3s", "10 s"])
    func invalidDurations(text: String) {
        #expect(DurationFormat.parse(text) == nil)
    }
}
