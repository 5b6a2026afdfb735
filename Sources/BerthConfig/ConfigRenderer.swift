import Foundation
import Yams

/// Prints the effective configuration (`berth config check`): every key, defaults filled in,
/// in a form `berth serve` reads back unchanged, except that secrets show as `<redacted>`
/// (ConfigRedaction).
public enum ConfigRenderer {
    public static func yaml(_ config: BerthConfig) -> String {
        (try? Yams.serialize(node: node(tree(config)))) ?? ""
    }

    public static func json(_ config: BerthConfig) -> String {
        jsonText(tree(config), indent: "")
    }

    static func tree(_ config: BerthConfig) -> ConfigValue {
        var sections: [(key: String, value: ConfigValue)] = [
            ("ssh", ssh(config.ssh)),
            ("auth", auth(config.auth)),
            (
                "configserver",
                .object(
                    http(config.configserver.http) + [
                        ("configTimeout", duration(config.configserver.configTimeout)),
                        ("transmitSensitiveMetadata", .bool(config.configserver.transmitSensitiveMetadata)),
                        ("allow", .array(config.configserver.allow.sorted().map { .string($0.rawValue) })),
                    ])
            ),
            ("log", log(config.log)),
            ("backend", .string(config.backend)),
            ("docker", docker(config.docker)),
            ("security", security(config.security)),
            (
                "sshproxy",
                .object([
                    ("server", .string(config.sshproxy.server)), ("port", .int(Int64(config.sshproxy.port))),
                    ("usernamePassThrough", .bool(config.sshproxy.usernamePassThrough)), ("username", .string(config.sshproxy.username)),
                    ("password", ConfigRedaction.secret(config.sshproxy.password)), ("privateKey", ConfigRedaction.keyMaterial(config.sshproxy.privateKey)),
                    ("allowedHostKeyFingerprints", strings(config.sshproxy.allowedHostKeyFingerprints)),
                    ("timeout", duration(config.sshproxy.timeout)), ("clientVersion", .string(config.sshproxy.clientVersion)),
                    ("ciphers", strings(config.sshproxy.ciphers)), ("kex", strings(config.sshproxy.kex)), ("macs", strings(config.sshproxy.macs)),
                    ("hostKeyAlgorithms", strings(config.sshproxy.hostKeyAlgorithms)),
                ])
            ),
            ("metrics", .object([("enable", .bool(config.metrics.enable)), ("listen", .string(config.metrics.listen)), ("path", .string(config.metrics.path))])),
            ("health", .object([("enable", .bool(config.health.enable)), ("listen", .string(config.health.listen))])),
            ("kubernetes", kubernetes(config.kubernetes)),
            ("audit", audit(config.audit)),
            ("persistence", persistence(config.persistence)),
            ("console", console(config.console)),
        ]
        for name in ConfigReader.rawSectionNames {
            if let section = config.rawSections[name] { sections.append((name, section)) }
        }
        return .object(sections)
    }

    private static func console(_ console: ConsoleConfig) -> ConfigValue {
        var fields: [(String, ConfigValue)] = [
            ("enable", .bool(console.enable)), ("listen", .string(console.listen)), ("cert", .string(console.cert)),
            ("key", ConfigRedaction.keyMaterial(console.key)), ("tlsVersion", .string(console.tlsVersion)),
            ("showWatching", .bool(console.showWatching)), ("xtermDirectory", .string(console.xtermDirectory)),
            (
                "operators",
                .array(
                    console.operators.map {
                        .object([("username", .string($0.username)), ("passwordHash", ConfigRedaction.secret($0.passwordHash)), ("role", .string($0.role.rawValue))])
                    })
            ),
        ]
        if let oidc = console.oidc {
            fields.append(
                (
                    "oidc",
                    .object(
                        http(oidc.http) + [
                            ("clientId", .string(oidc.clientId)), ("clientSecret", ConfigRedaction.secret(oidc.clientSecret)),
                            ("redirectURI", .string(oidc.redirectURI)), ("usernameField", .string(oidc.usernameField)),
                            ("extraScopes", strings(oidc.extraScopes)), ("providerName", .string(oidc.providerName)),
                        ])
                ))
        }
        return .object(fields)
    }

    private static func kubernetes(_ kubernetes: KubernetesConfig) -> ConfigValue {
        let connection = kubernetes.connection
        let pod = kubernetes.pod
        let timeouts = kubernetes.timeouts
        return .object([
            (
                "connection",
                .object([
                    ("host", ConfigRedaction.url(connection.host)), ("path", .string(connection.path)), ("cacert", .string(connection.cacert)),
                    ("cert", .string(connection.cert)), ("key", ConfigRedaction.keyMaterial(connection.key)),
                    ("bearerToken", ConfigRedaction.secret(connection.bearerToken)), ("bearerTokenFile", .string(connection.bearerTokenFile)),
                    ("serverName", .string(connection.serverName)), ("insecure", .bool(connection.insecure)), ("kubeconfig", .string(connection.kubeconfig)),
                ])
            ),
            (
                "pod",
                .object([
                    ("metadata", pod.metadata), ("spec", pod.spec), ("consoleContainerNumber", .int(Int64(pod.consoleContainerNumber))),
                    ("mode", .string(pod.mode.rawValue)), ("createMissingPods", .bool(pod.createMissingPods)),
                    ("persistentShared", .bool(pod.persistentShared)),
                    ("idleCommand", strings(pod.idleCommand)), ("shellCommand", strings(pod.shellCommand)), ("agentPath", .string(pod.agentPath)),
                    ("disableAgent", .bool(pod.disableAgent)),
                    ("subsystems", .object(pod.subsystems.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                    ("exposeAuthMetadataAsEnv", .bool(pod.exposeAuthMetadataAsEnv)), ("exposeAuthMetadataAsLabels", .bool(pod.exposeAuthMetadataAsLabels)),
                    ("exposeAuthMetadataAsAnnotations", .bool(pod.exposeAuthMetadataAsAnnotations)),
                ])
            ),
            (
                "timeouts",
                .object([
                    ("podStart", duration(timeouts.podStart)), ("podStop", duration(timeouts.podStop)), ("commandStart", duration(timeouts.commandStart)),
                    ("signal", duration(timeouts.signal)), ("window", duration(timeouts.window)), ("http", duration(timeouts.http)),
                ])
            ),
        ])
    }

    private static func audit(_ audit: AuditConfig) -> ConfigValue {
        let intercept = audit.intercept
        let s3 = audit.s3
        return .object([
            ("enable", .bool(audit.enable)), ("format", .string(audit.format.rawValue)), ("storage", .string(audit.storage.rawValue)),
            (
                "intercept",
                .object([
                    ("stdin", .bool(intercept.stdin)), ("stdout", .bool(intercept.stdout)), ("stderr", .bool(intercept.stderr)),
                    ("passwords", .bool(intercept.passwords)), ("forwarding", .bool(intercept.forwarding)),
                ])
            ),
            ("file", .object([("directory", .string(audit.directory))])),
            (
                "s3",
                .object([
                    ("local", .string(s3.local)), ("accessKey", .string(s3.accessKey)), ("secretKey", ConfigRedaction.secret(s3.secretKey)),
                    ("bucket", .string(s3.bucket)), ("region", .string(s3.region)), ("endpoint", ConfigRedaction.url(s3.endpoint)), ("cacert", .string(s3.cacert)),
                    ("acl", .string(s3.acl)), ("pathStyleAccess", .bool(s3.pathStyleAccess)), ("uploadPartSize", .int(Int64(s3.uploadPartSize))),
                    ("parallelUploads", .int(Int64(s3.parallelUploads))),
                    ("metadata", .object([("ip", .bool(s3.metadataIP)), ("username", .bool(s3.metadataUsername))])),
                ])
            ),
        ])
    }

    private static func strings(_ list: [String]) -> ConfigValue { .array(list.map(ConfigValue.string)) }
    private static func duration(_ value: BerthDuration) -> ConfigValue { .string(value.description) }

    private static func ssh(_ ssh: SSHConfig) -> ConfigValue {
        .object([
            ("listen", .string(ssh.listen)), ("serverVersion", .string(ssh.serverVersion)), ("banner", .string(ssh.banner)),
            ("hostkeys", .array(ssh.hostkeys.map(ConfigRedaction.keyMaterial))), ("hostCertificates", strings(ssh.hostCertificates)),
            ("stateDirectory", .string(ssh.stateDirectory)),
            ("ciphers", strings(ssh.ciphers)), ("kex", strings(ssh.kex)), ("macs", strings(ssh.macs)),
            ("hostKeyAlgorithms", strings(ssh.hostKeyAlgorithms)), ("publicKeyAlgorithms", strings(ssh.publicKeyAlgorithms)),
            ("maxStartups", .string(ssh.maxStartups.description)),
            ("perSourceMaxStartups", .int(Int64(ssh.perSourceStartups.max))), ("perSourceNetBlockSize", .string(ssh.perSourceStartups.blockSizeDescription)),
            ("descriptorReserve", .int(Int64(ssh.descriptorReserve))),
            ("shutdownTimeout", duration(ssh.shutdownTimeout)), ("clientAliveInterval", duration(ssh.clientAliveInterval)),
            ("clientAliveCountMax", .int(Int64(ssh.clientAliveCountMax))),
            ("maxAuthTries", .int(Int64(ssh.maxAuthTries))), ("loginGraceTime", duration(ssh.loginGraceTime)),
            ("idleTimeout", duration(ssh.idleTimeout)), ("maxConnections", .int(Int64(ssh.maxConnections))),
            ("maxConnectionsPerIP", .int(Int64(ssh.maxConnectionsPerIP))),
        ])
    }

    private static func http(_ http: HTTPClientConfig) -> [(key: String, value: ConfigValue)] {
        [
            ("url", ConfigRedaction.url(http.url)), ("timeout", duration(http.timeout)), ("cacert", .string(http.cacert)),
            ("cert", .string(http.cert)), ("key", ConfigRedaction.keyMaterial(http.key)), ("tlsVersion", .string(http.tlsVersion)),
            ("curves", strings(http.curves)), ("cipher", strings(http.cipher)), ("allowRedirects", .bool(http.allowRedirects)),
        ]
    }

    private static func webhook(_ webhook: WebhookConfig) -> ConfigValue {
        .object(http(webhook.http) + [("authTimeout", duration(webhook.authTimeout))])
    }

    private static func users(_ config: StaticUsersConfig) -> ConfigValue {
        .object([
            (
                "users",
                .array(
                    config.users.map { user in
                        .object([
                            ("username", .string(user.username)), ("passwordHash", ConfigRedaction.secret(user.passwordHash)), ("authorizedKeys", strings(user.authorizedKeys)),
                            ("totpSecret", ConfigRedaction.secret(user.totpSecret)),
                        ])
                    })
            ),
            ("usersFile", .string(config.usersFile)),
        ])
    }

    private static func keyboardInteractive(_ config: KeyboardInteractiveConfig) -> ConfigValue {
        var fields: [(String, ConfigValue)] = [("method", .string(config.method.rawValue)), ("passwordPrompt", .bool(config.passwordPrompt))]
        if config.method == .oauth2 {
            let oauth2 = config.oauth2
            fields.append(
                (
                    "oauth2",
                    .object([
                        ("clientId", .string(oauth2.clientId)), ("clientSecret", ConfigRedaction.secret(oauth2.clientSecret)),
                        ("provider", .string(oauth2.provider)), ("authTimeout", duration(oauth2.authTimeout)),
                        (
                            "oidc",
                            .object(
                                http(oauth2.oidc.http) + [
                                    ("deviceFlow", .bool(oauth2.oidc.deviceFlow)),
                                    ("usernameField", .string(oauth2.oidc.usernameField)), ("extraScopes", strings(oauth2.oidc.extraScopes)),
                                    ("enforceScopes", .bool(oauth2.oidc.enforceScopes)),
                                ])
                        ),
                    ])
                ))
        }
        return .object(fields)
    }

    private static func auth(_ auth: AuthConfig) -> ConfigValue {
        .object([
            (
                "password",
                .object([
                    ("method", .string(auth.password.method.rawValue)), ("webhook", webhook(auth.password.webhook)), ("static", users(auth.password.static)),
                ])
            ),
            (
                "publicKey",
                .object([
                    ("method", .string(auth.publicKey.method.rawValue)), ("webhook", webhook(auth.publicKey.webhook)), ("static", users(auth.publicKey.static)),
                    ("authorizedKeys", .object([("pathTemplate", .string(auth.publicKey.authorizedKeys.pathTemplate))])),
                    ("trustedUserCAKeys", strings(auth.publicKey.trustedUserCAKeys)),
                ])
            ),
            ("authz", .object([("method", .string(auth.authz.method.rawValue)), ("webhook", webhook(auth.authz.webhook))])),
            ("keyboardInteractive", keyboardInteractive(auth.keyboardInteractive)),
            (
                "secondFactor",
                .object([
                    ("method", .string(auth.secondFactor.method.rawValue)), ("required", .bool(auth.secondFactor.required)),
                    (
                        "totp",
                        .object([
                            ("digits", .int(Int64(auth.secondFactor.digits))), ("period", duration(auth.secondFactor.period)),
                            ("algorithm", .string(auth.secondFactor.algorithm.rawValue)), ("skew", .int(Int64(auth.secondFactor.skew))),
                            ("metadataKey", .string(auth.secondFactor.metadataKey)),
                        ])
                    ),
                ])
            ),
            (
                "protection",
                .object([
                    ("enabled", .bool(auth.protection.enabled)), ("delayAfter", .int(Int64(auth.protection.delayAfter))),
                    ("baseDelay", duration(auth.protection.baseDelay)), ("maxDelay", duration(auth.protection.maxDelay)),
                    ("addressThreshold", .int(Int64(auth.protection.addressThreshold))), ("userThreshold", .int(Int64(auth.protection.userThreshold))),
                    ("blockDuration", duration(auth.protection.blockDuration)), ("forgetAfter", duration(auth.protection.forgetAfter)),
                    ("allow", strings(auth.protection.allow)),
                ])
            ),
        ])
    }

    private static func persistence(_ persistence: PersistenceConfig) -> ConfigValue {
        .object([
            ("serverIdentity", .string(persistence.serverIdentity)),
            ("idleTimeout", duration(persistence.idleTimeout)), ("maxLifetime", duration(persistence.maxLifetime)),
            (
                "volume",
                .object([
                    ("enabled", .bool(persistence.volume.enabled)), ("namePrefix", .string(persistence.volume.namePrefix)),
                    ("mountPath", .string(persistence.volume.mountPath)), ("size", .string(persistence.volume.size)),
                    ("storageClass", .string(persistence.volume.storageClass)),
                ])
            ),
            ("resumeWindow", duration(persistence.resumeWindow)), ("resume", .string(persistence.resume.rawValue)),
            ("resumeBuffer", .int(Int64(persistence.resumeBuffer))),
        ])
    }

    private static func docker(_ docker: DockerConfig) -> ConfigValue {
        let execution = docker.execution
        let timeouts = docker.timeouts
        return .object([
            (
                "connection",
                .object([
                    ("host", ConfigRedaction.url(docker.connection.host)), ("cacert", .string(docker.connection.cacert)),
                    ("cert", .string(docker.connection.cert)), ("key", ConfigRedaction.keyMaterial(docker.connection.key)),
                ])
            ),
            (
                "execution",
                .object([
                    ("container", execution.container), ("host", execution.host), ("network", execution.network),
                    ("platform", execution.platform), ("containername", .string(execution.containerName)), ("auth", ConfigRedaction.registryAuth(execution.auth)),
                    ("mode", .string(execution.mode.rawValue)), ("idleCommand", strings(execution.idleCommand)),
                    ("shellCommand", strings(execution.shellCommand)), ("agentPath", .string(execution.agentPath)),
                    ("disableAgent", .bool(execution.disableAgent)), ("agentSocketRoot", .string(execution.agentSocketRoot)),
                    ("subsystems", .object(execution.subsystems.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
                    ("imagePullPolicy", .string(execution.imagePullPolicy.rawValue)),
                    ("exposeAuthMetadataAsEnv", .bool(execution.exposeAuthMetadataAsEnv)),
                    ("pool", .object([("size", .int(Int64(execution.pool.size))), ("maxAge", duration(execution.pool.maxAge))])),
                ])
            ),
            (
                "timeouts",
                .object([
                    ("containerStart", duration(timeouts.containerStart)), ("containerStop", duration(timeouts.containerStop)),
                    ("commandStart", duration(timeouts.commandStart)), ("signal", duration(timeouts.signal)),
                    ("window", duration(timeouts.window)), ("http", duration(timeouts.http)),
                ])
            ),
        ])
    }

    private static func security(_ security: SecurityConfig) -> ConfigValue {
        func filter(_ filter: SecurityConfig.Filter, lists: Bool, deny: Bool = true) -> ConfigValue {
            .object(filterFields(filter, lists: lists, deny: deny))
        }
        let forwarding = security.forwarding
        let env =
            filterFields(security.env, lists: true) + [
                ("maxVariables", .int(Int64(security.envLimits.maxVariables))), ("maxSize", .int(Int64(security.envLimits.maxSize))),
            ]
        return .object([
            ("defaultMode", .string(security.defaultMode.rawValue)), ("forceCommand", .string(security.forceCommand)),
            ("env", .object(env)), ("command", filter(security.command, lists: true, deny: false)),
            ("shell", filter(security.shell, lists: false)), ("subsystem", filter(security.subsystem, lists: true)),
            ("tty", filter(security.tty, lists: false)), ("signal", filter(security.signal, lists: true)),
            (
                "forwarding",
                .object([
                    ("forwardingMode", .string(forwarding.forwardingMode.rawValue)),
                    ("reverseForwardingMode", .string(forwarding.reverseForwardingMode.rawValue)),
                    ("socketForwardingMode", .string(forwarding.socketForwardingMode.rawValue)),
                    ("socketListenMode", .string(forwarding.socketListenMode.rawValue)),
                    ("x11ForwardingMode", .string(forwarding.x11ForwardingMode.rawValue)),
                    ("agentForwardingMode", .string(forwarding.agentForwardingMode.rawValue)),
                ])
            ),
            ("maxSessions", .int(Int64(security.maxSessions))),
        ])
    }

    private static func filterFields(_ filter: SecurityConfig.Filter, lists: Bool, deny: Bool = true) -> [(key: String, value: ConfigValue)] {
        var fields: [(key: String, value: ConfigValue)] = [("mode", .string(filter.mode.rawValue))]
        if lists { fields.append(("allow", strings(filter.allow))) }
        if lists && deny { fields.append(("deny", strings(filter.deny))) }
        return fields
    }

    private static func log(_ log: LogConfig) -> ConfigValue {
        .object([
            ("level", .string(log.level.rawValue)), ("format", .string(log.format.rawValue)),
            ("destination", .string(log.destination.rawValue)), ("file", .string(log.file)),
            (
                "syslog",
                .object([
                    ("destination", .string(log.syslog.destination)), ("facility", .string(log.syslog.facility)),
                    ("tag", .string(log.syslog.tag)), ("pid", .bool(log.syslog.pid)),
                ])
            ),
        ])
    }

    static func node(_ value: ConfigValue) -> Node {
        switch value {
        case .null: return Node("null", Tag(.null))
        case .bool(let flag): return Node(flag ? "true" : "false", Tag(.bool))
        case .int(let number): return Node(String(number), Tag(.int))
        case .double(let number): return Node(String(number), Tag(.float))
        // Quoted so that strings like "0", "true" or "" stay strings when read back.
        case .string(let text): return Node(text, Tag(.str), .doubleQuoted)
        case .array(let items): return Node(items.map(node))
        case .object(let fields): return .mapping(Node.Mapping(fields.map { (Node($0.key), node($0.value)) }))
        }
    }

    static func jsonText(_ value: ConfigValue, indent: String) -> String {
        let inner = indent + "  "
        switch value {
        case .null: return "null"
        case .bool(let flag): return flag ? "true" : "false"
        case .int(let number): return String(number)
        case .double(let number): return String(number)
        case .string(let text): return jsonString(text)
        case .array(let items):
            if items.isEmpty { return "[]" }
            return "[\n" + items.map { inner + jsonText($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let fields):
            if fields.isEmpty { return "{}" }
            return "{\n" + fields.map { "\(inner)\(jsonString($0.key)): \(jsonText($0.value, indent: inner))" }.joined(separator: ",\n") + "\n\(indent)}"
        }
    }
}
