import Testing

@testable import BerthConfig

@Suite struct ConsoleConfigTests {
    private func load(_ yaml: String) throws -> BerthConfig { try readConfig(minimalAuthYAML + yaml).config }
    private func problems(_ yaml: String) -> [String] { configProblems(minimalAuthYAML + yaml) }
    private let hash = "$6$consoleSALT$5h/ZbvTk53leKPYZUZlP/L9B/89RAX945hm3Zq5lL2xqNOu9ImzEn01QDloBnSM2zCyS86LdsqP1NhpqPG0yA0"

    @Test func offByDefaultOnLoopback() throws {
        let console = try load("").console
        #expect(!console.enable)
        #expect(console.listen == "127.0.0.1:7080")
        #expect(console.operators.isEmpty)
        #expect(console.showWatching)
        #expect(console.tlsVersion == "1.3")
    }

    @Test func everyKeyIsRead() throws {
        let console = try load(
            """
            console:
              enable: true
              listen: "[::1]:9443"
              cert: /etc/berth/console.crt
              key: /etc/berth/console.key
              tlsVersion: "1.2"
              showWatching: false
              xtermDirectory: /opt/xterm
              operators:
                - {username: ada, passwordHash: "\(hash)", role: admin}
                - {username: rory, passwordHash: "\(hash)"}
            """
        ).console
        #expect(console.enable && console.listen == "[::1]:9443" && console.tls)
        #expect(console.cert == "/etc/berth/console.crt" && console.key == "/etc/berth/console.key" && console.tlsVersion == "1.2")
        #expect(!console.showWatching && console.xtermDirectory == "/opt/xterm")
        #expect(console.operators == [ConsoleOperator(username: "ada", passwordHash: hash, role: .admin), ConsoleOperator(username: "rory", passwordHash: hash, role: .readonly)])
    }

    @Test func badValuesAreRefusedByName() {
        let found = problems(
            """
            console:
              enable: true
              listen: "0.0.0.0:7080"
              cert: /a.crt
              tlsVersion: "1.1"
              colour: blue
              operators:
                - {username: ada, passwordHash: plain, role: root}
                - {username: ada, passwordHash: "\(hash)", extra: 1}
                - {passwordHash: "\(hash)"}
            """
        ).joined(separator: "\n")
        for expected in [
            "console.colour: unknown key", "console.key: cert and key go together", "console.tlsVersion: \"1.1\" is not one of 1.2, 1.3",
            "console.operators[0].passwordHash: must be a crypt(3) hash", "console.operators[0].role: \"root\" is not one of admin, readonly",
            "console.operators[1].username: \"ada\" is listed twice", "console.operators[1].extra: unknown key", "console.operators[2].username: required",
        ] {
            #expect(found.contains(expected), "missing: \(expected)\nin: \(found)")
        }
    }

    @Test func enabledNeedsOperatorsAndTLSOffLoopback() {
        #expect(problems("console: {enable: true}").joined().contains("console.operators: the console is enabled but lists no operator"))
        let open = problems("console: {enable: true, listen: \"0.0.0.0:7080\", operators: [{username: a, passwordHash: \"\(hash)\"}]}").joined()
        #expect(open.contains("console.listen: \"0.0.0.0:7080\" is not a loopback address"))
        #expect(problems("console: {enable: true, listen: \"localhost:7080\", operators: [{username: a, passwordHash: \"\(hash)\"}]}").isEmpty)
        // Disabled, nothing else is demanded.
        #expect(problems("console: {listen: \"0.0.0.0:7080\"}").isEmpty)
    }

    @Test func oidcIsReadAndLetsOperatorsGoWithoutAPassword() throws {
        let console = try load(
            """
            console:
              enable: true
              oidc:
                url: https://idp.example/realms/lab
                clientId: berth-console
                clientSecret: s3cret
                redirectURI: https://console.example/oidc/callback
                usernameField: email
                extraScopes: [email]
                providerName: Lab SSO
                timeout: 5s
              operators:
                - {username: ada, passwordHash: "\(hash)", role: admin}
                - {username: tutor@lab.example, role: admin}
            """
        ).console
        let oidc = try #require(console.oidc)
        #expect(oidc.http.url == "https://idp.example/realms/lab" && oidc.http.timeout == .seconds(5))
        #expect(oidc.clientId == "berth-console" && oidc.clientSecret == "s3cret" && oidc.redirectURI == "https://console.example/oidc/callback")
        #expect(oidc.usernameField == "email" && oidc.extraScopes == ["email"] && oidc.providerName == "Lab SSO")
        #expect(console.operators[1] == ConsoleOperator(username: "tutor@lab.example", passwordHash: "", role: .admin))
        let defaults = try #require(
            try load("console: {oidc: {url: \"https://idp.example\", clientId: c, redirectURI: \"http://127.0.0.1:7080/oidc/callback\"}}").console.oidc)
        #expect(defaults.usernameField == "sub" && defaults.providerName == "OIDC" && defaults.clientSecret.isEmpty)
        #expect(try load("").console.oidc == nil)
    }

    @Test func oidcMistakesAreRefusedByName() {
        let found = problems(
            """
            console:
              oidc:
                url: not-a-url
                redirectURI: https://console.example/callback
                usernameField: ""
                scopes: [email]
            """
        ).joined(separator: "\n")
        for expected in [
            "console.oidc.url: \"not-a-url\" is not an absolute", "console.oidc.clientId: required",
            "console.oidc.redirectURI: \"https://console.example/callback\" is not an absolute http:// or https:// URL ending in /oidc/callback",
            "console.oidc.usernameField: must name a claim", "console.oidc.scopes: unknown key",
        ] {
            #expect(found.contains(expected), "missing: \(expected)\nin: \(found)")
        }
        #expect(problems("console: {oidc: {url: \"https://idp.example\", clientId: c}}").joined().contains("console.oidc.redirectURI: required"))
        // Without oidc, an operator without a password could never sign in.
        #expect(
            problems("console: {enable: true, operators: [{username: a}]}").joined().contains(
                "console.operators[0].passwordHash: required unless console.oidc is set"))
    }
}
