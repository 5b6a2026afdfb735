import Foundation

/// Turns a parsed document into `BerthConfig`, strictly (docs/configuration.md): unknown keys, wrong types
/// and invalid values are all reported, each with its key path.
public enum ConfigReader {
    static let rawSectionNames = ["geoip"]
    static let backends = ["docker", "kubernetes", "sshproxy"]

    public static func read(_ value: ConfigValue, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> (config: BerthConfig, warnings: [String]) {
        let issues = ConfigIssues()
        var root = ObjectReader(value, path: "", issues: issues)
        var config = BerthConfig()
        var ssh = root.object("ssh")
        config.ssh = readSSH(&ssh)
        var auth = root.object("auth")
        config.auth = AuthSectionReader.read(&auth)
        var configserver = root.object("configserver")
        config.configserver = readConfigServer(&configserver)
        var log = root.object("log")
        config.log = readLog(&log)
        config.backend = root.string("backend", config.backend)
        var docker = root.object("docker")
        config.docker = DockerSectionReader.read(&docker)
        var security = root.object("security")
        config.security = SecuritySectionReader.read(&security)
        var sshproxy = root.object("sshproxy")
        config.sshproxy = SSHProxySectionReader.read(&sshproxy, required: config.backend == "sshproxy")
        var metrics = root.object("metrics")
        config.metrics = ObservabilitySectionReader.metrics(&metrics)
        var health = root.object("health")
        config.health = ObservabilitySectionReader.health(&health)
        var kubernetes = root.object("kubernetes")
        config.kubernetes = KubernetesSectionReader.read(&kubernetes, required: config.backend == "kubernetes")
        var audit = root.object("audit")
        config.audit = AuditSectionReader.read(&audit)
        var persistence = root.object("persistence")
        config.persistence = PersistenceSectionReader.read(&persistence)
        var console = root.object("console")
        config.console = ConsoleSectionReader.read(&console)
        checkVolume(config, given: value["persistence"]?["volume"], issues: issues)
        let testBackendEnabled = environment["BERTH_ENABLE_TEST_BACKEND"] == "1"
        if config.backend == "echo" && !testBackendEnabled {
            issues.add("backend", "\"echo\" is a test-only backend; it is accepted only with BERTH_ENABLE_TEST_BACKEND=1")
        } else if config.backend != "echo" && !backends.contains(config.backend) {
            issues.add("backend", "\"\(config.backend)\" is not one of \(backends.joined(separator: ", "))")
        }
        for name in rawSectionNames {
            guard let section = root.value(name) else { continue }
            guard case .object = section else {
                issues.add(name, "expected a map, got \(section.brief)")
                continue
            }
            config.rawSections[name] = section
        }
        root.finish()
        try issues.throwIfAny()
        return (config, issues.warnings)
    }

    /// The claim settings mean something on Kubernetes only; a per-user claim has no place in the
    /// one pod every user shares.
    private static func checkVolume(_ config: BerthConfig, given: ConfigValue?, issues: ConfigIssues) {
        if config.backend == "kubernetes" {
            if config.persistence.volume.enabled && config.kubernetes.pod.persistentShared {
                issues.add(
                    "persistence.volume.enabled",
                    "cannot be used with kubernetes.pod.persistentShared: every user shares that one pod, so no user's claim belongs in it (docs/configuration.md, \"persistence\")"
                )
            }
        } else {
            for key in ["size", "storageClass"] where given?[key] != nil {
                issues.warn("CONFIG_SETTING_UNUSED: persistence.volume.\(key) has no effect with the \(config.backend) backend: it sizes and places Kubernetes claims")
            }
        }
    }

    private static func readSSH(_ reader: inout ObjectReader) -> SSHConfig {
        var ssh = SSHConfig()
        ssh.listen = reader.string("listen", ssh.listen)
        if let problem = ListenAddress.problem(ssh.listen) { reader.issues.add(reader.keyPath("listen"), problem) }
        ssh.serverVersion = reader.string("serverVersion", ssh.serverVersion)
        if !ServerVersion.isValid(ssh.serverVersion) {
            reader.issues.add(
                reader.keyPath("serverVersion"),
                "\"\(ssh.serverVersion)\" must look like SSH-2.0-Name_1.0 (printable ASCII, optional comment after one space, at most 253 characters)")
        }
        ssh.banner = reader.string("banner", ssh.banner)
        ssh.hostkeys = reader.strings("hostkeys", ssh.hostkeys)
        ssh.hostCertificates = reader.strings("hostCertificates", ssh.hostCertificates)
        ssh.stateDirectory = reader.string("stateDirectory", ssh.stateDirectory)
        ssh.ciphers = checkedList(&reader, "ciphers", ssh.ciphers, supported: SSHAlgorithmNames.ciphers)
        ssh.kex = checkedList(&reader, "kex", ssh.kex, supported: SSHAlgorithmNames.kex)
        ssh.macs = checkedList(&reader, "macs", ssh.macs, supported: SSHAlgorithmNames.macs)
        ssh.hostKeyAlgorithms = checkedList(&reader, "hostKeyAlgorithms", ssh.hostKeyAlgorithms, supported: SSHAlgorithmNames.hostKeyAlgorithms)
        ssh.publicKeyAlgorithms = checkedList(&reader, "publicKeyAlgorithms", ssh.publicKeyAlgorithms, supported: SSHAlgorithmNames.publicKeyAlgorithms)
        if reader.has("maxStartups") {
            switch MaxStartups.parse(reader.string("maxStartups", "")) {
            case .success(let limit): ssh.maxStartups = limit
            case .failure(let problem): reader.issues.add(reader.keyPath("maxStartups"), problem)
            }
        }
        ssh.perSourceStartups.max = reader.int("perSourceMaxStartups", ssh.perSourceStartups.max, minimum: 0)
        if reader.has("perSourceNetBlockSize") {
            let text = reader.string("perSourceNetBlockSize", "")
            if let (v4, v6) = PerSourceStartups.parseBlockSize(text) {
                ssh.perSourceStartups.v4Bits = v4
                ssh.perSourceStartups.v6Bits = v6
            } else {
                reader.issues.add(reader.keyPath("perSourceNetBlockSize"), "\"\(text)\" is not ipv4bits or ipv4bits:ipv6bits (e.g. 32:64; at most 32 and 128)")
            }
        }
        ssh.shutdownTimeout = reader.duration("shutdownTimeout", ssh.shutdownTimeout)
        ssh.clientAliveInterval = reader.duration("clientAliveInterval", ssh.clientAliveInterval, minimum: .seconds(1))
        ssh.clientAliveCountMax = reader.int("clientAliveCountMax", ssh.clientAliveCountMax, minimum: 1)
        ssh.maxAuthTries = reader.int("maxAuthTries", ssh.maxAuthTries, minimum: 1)
        ssh.loginGraceTime = reader.duration("loginGraceTime", ssh.loginGraceTime)
        ssh.idleTimeout = reader.duration("idleTimeout", ssh.idleTimeout, minimum: .seconds(1))
        ssh.maxConnections = reader.int("maxConnections", ssh.maxConnections, minimum: 0)
        ssh.maxConnectionsPerIP = reader.int("maxConnectionsPerIP", ssh.maxConnectionsPerIP, minimum: 0)
        ssh.descriptorReserve = reader.int("descriptorReserve", ssh.descriptorReserve, minimum: 0)
        reader.finish()
        return ssh
    }

    /// ContainerSSH allows an empty `ciphers` list (meaning the defaults) but not an empty `kex`
    /// or `macs`; Berth keeps both rules so the same files load the same way.
    static func checkedList(_ reader: inout ObjectReader, _ key: String, _ defaults: [String], supported: [String]) -> [String] {
        guard reader.has(key) else { return defaults }
        let names = reader.strings(key, [])
        for name in names where !supported.contains(name) {
            reader.issues.add(reader.keyPath(key), "\"\(name)\" is not supported; supported: \(supported.joined(separator: ", "))")
        }
        if names.isEmpty {
            if key == "ciphers" { return defaults }
            reader.issues.add(reader.keyPath(key), "must list at least one algorithm (leave the key out for Berth's defaults)")
        }
        return names
    }

    private static func readConfigServer(_ reader: inout ObjectReader) -> ConfigServerConfig {
        var config = ConfigServerConfig()
        config.http = HTTPClientReader.read(&reader, required: false)
        config.configTimeout = reader.duration("configTimeout", config.configTimeout, minimum: .milliseconds(100), allowZero: false)
        config.transmitSensitiveMetadata = reader.bool("transmitSensitiveMetadata", false)
        for (index, name) in reader.strings("allow", []).enumerated() {
            guard let permission = ConfigWebhookPermission(rawValue: name) else {
                reader.issues.add("\(reader.keyPath("allow"))[\(index)]", "\"\(name)\" is not one of \(ObjectReader.names(ConfigWebhookPermission.self))")
                continue
            }
            config.allow.insert(permission)
        }
        reader.finish()
        return config
    }

    static let syslogFacilities =
        ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "logaudit", "logalert", "clock"]
        + (0...7).map { "local\($0)" }

    private static func readLog(_ reader: inout ObjectReader) -> LogConfig {
        var log = LogConfig()
        log.level = LogLevelNames.read(&reader, "level", log.level)
        log.format = reader.choice("format", log.format)
        log.destination = reader.choice("destination", log.destination)
        log.file = reader.string("file", log.file)
        var syslog = reader.object("syslog")
        log.syslog.destination = syslog.string("destination", log.syslog.destination)
        log.syslog.facility = syslog.string("facility", log.syslog.facility)
        if !syslogFacilities.contains(log.syslog.facility) {
            reader.issues.add(syslog.keyPath("facility"), "\"\(log.syslog.facility)\" is not one of \(syslogFacilities.joined(separator: ", "))")
        }
        log.syslog.tag = syslog.string("tag", log.syslog.tag)
        log.syslog.pid = syslog.bool("pid", log.syslog.pid)
        syslog.finish()
        if log.destination == .file, log.file.isEmpty {
            reader.issues.add(reader.keyPath("file"), "required when destination is file")
        }
        reader.finish()
        return log
    }
}

enum LogLevelNames {
    private static let aliases: [String: LogLevel] = ["crit": .critical, "emerg": .emergency, "warn": .warning]
    private static let numbers: [LogLevel] = [.emergency, .alert, .critical, .error, .warning, .notice, .info, .debug]

    static func read(_ reader: inout ObjectReader, _ key: String, _ fallback: LogLevel) -> LogLevel {
        switch reader.value(key) {
        case nil: return fallback
        case .int(let number)? where (0...7).contains(number): return numbers[Int(number)]
        case .string(let text)?:
            if let level = LogLevel(rawValue: text) ?? aliases[text] { return level }
            reader.issues.add(reader.keyPath(key), "\"\(text)\" is not one of \(ObjectReader.names(LogLevel.self)) (or 0-7)")
            return fallback
        case let other?:
            reader.issues.add(reader.keyPath(key), "expected a log level, got \(other.brief)")
            return fallback
        }
    }
}

enum ListenAddress {
    static func problem(_ listen: String) -> String? {
        guard let colon = listen.lastIndex(of: ":") else { return "\"\(listen)\" is not host:port" }
        let host = listen[..<colon]
        guard let port = Int(listen[listen.index(after: colon)...]), (0...65535).contains(port) else {
            return "\"\(listen)\" has no valid port (0-65535)"
        }
        if host.contains(":") && !(host.hasPrefix("[") && host.hasSuffix("]")) {
            return "\"\(listen)\": write IPv6 addresses in brackets, e.g. [::]:2222"
        }
        return nil
    }
}

enum ServerVersion {
    static func isValid(_ text: String) -> Bool {
        guard text.hasPrefix("SSH-2.0-"), text.count <= 253 else { return false }
        let rest = text.dropFirst("SSH-2.0-".count)
        let parts = rest.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
        guard let software = parts.first, !software.isEmpty,
            software.unicodeScalars.allSatisfy({ (0x21...0x7E).contains($0.value) && $0 != "-" })
        else { return false }
        if parts.count == 2 {
            let comment = parts[1]
            return !comment.isEmpty
                && comment.unicodeScalars.allSatisfy {
                    $0.properties.isASCIIHexDigit || CharacterSet.alphanumerics.contains($0) && $0.isASCII || "- _.".unicodeScalars.contains($0)
                }
        }
        return true
    }
}
