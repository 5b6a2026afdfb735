/// What a config webhook may change beyond ordinary settings (`configserver.allow`). The webhook
/// is another program, often another team's; by default it may pick images, commands,
/// environment, limits and timeouts, but nothing that reaches the host or Berth's own
/// credentials. docs/configuration.md lists the keys of each category.
public enum ConfigWebhookPermission: String, Sendable, Hashable, CaseIterable, Comparable {
    case privileged, hostMounts, hostNamespaces, devices, capabilities, securityOptions
    case serviceAccount, nodeName, backend, engineEndpoint, proxyTarget, credentials, network, sharedPod

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }
}

/// Checks a config webhook's answer against `configserver.allow`.
public struct ConfigWebhookPolicy: Sendable {
    /// One key of the answer the policy refuses. `category` is nil for server-wide settings,
    /// which no permission opens.
    public struct Refusal: Sendable, Hashable, CustomStringConvertible {
        public let path: String
        public let category: ConfigWebhookPermission?

        public var description: String {
            if let category { return "\(path) (needs \"\(category.rawValue)\" in configserver.allow)" }
            return "\(path) (applies to the whole server, not one connection)"
        }
    }

    public let allow: Set<ConfigWebhookPermission>
    /// Capabilities a container may be given without `capabilities`: Berth's default set plus
    /// what the operator's own `docker.execution.host.CapAdd` adds.
    public let ordinaryCapabilities: Set<String>

    public init(allow: Set<ConfigWebhookPermission>, ordinaryCapabilities: Set<String>) {
        self.allow = allow
        self.ordinaryCapabilities = Set(ordinaryCapabilities.map(Self.capabilityName))
    }

    /// Every refused key of `answer` (the webhook's `config`), given the file's configuration
    /// `base` and the validated result of merging the answer over it.
    public func refusals(answer: ConfigValue, base: BerthConfig, merged: BerthConfig) -> [Refusal] {
        var check = Check(ordinaryCapabilities: ordinaryCapabilities)
        check.settings(base: base, merged: merged)
        if let docker = answer["docker"], let execution = docker["execution"] {
            if let container = execution["container"] { check.dockerHost(container, "docker.execution.container") }
            if let host = execution["host"] { check.dockerHost(host, "docker.execution.host") }
            if let network = execution["network"] { check.dockerNetwork(network, "docker.execution.network") }
        }
        if let pod = answer["kubernetes"]?["pod"] {
            if let spec = pod["spec"] { check.podSpec(spec, "kubernetes.pod.spec") }
            if let metadata = pod["metadata"] { check.podMetadata(metadata, "kubernetes.pod.metadata") }
        }
        return check.found.filter { refusal in refusal.category.map { !allow.contains($0) } ?? true }
    }

    /// `cap_net_raw` and `NET_RAW` are the same capability to Docker and Kubernetes.
    static func capabilityName(_ name: String) -> String {
        let upper = name.uppercased()
        return upper.hasPrefix("CAP_") ? String(upper.dropFirst(4)) : upper
    }
}

/// The walk over one answer; collects every finding, allowed or not.
private struct Check {
    let ordinaryCapabilities: Set<String>
    var found: [ConfigWebhookPolicy.Refusal] = []

    mutating func add(_ path: String, _ category: ConfigWebhookPermission?) {
        found.append(.init(path: path, category: category))
    }

    // MARK: Berth's own settings

    /// Berth's own keys are compared as read, so a webhook that repeats the file's value (or a
    /// default) changes nothing and is not refused. Validation has already refused unknown keys.
    mutating func settings(base: BerthConfig, merged: BerthConfig) {
        func compare<Value: Equatable>(_ path: String, _ value: (BerthConfig) -> Value, _ category: ConfigWebhookPermission?) {
            if value(base) != value(merged) { add(path, category) }
        }
        compare("backend", \.backend, .backend)
        compare("docker.connection.host", \.docker.connection.host, .engineEndpoint)
        compare("docker.connection.cacert", \.docker.connection.cacert, .credentials)
        compare("docker.connection.cert", \.docker.connection.cert, .credentials)
        compare("docker.connection.key", \.docker.connection.key, .credentials)
        // Berth creates a directory there and bind-mounts it into the container.
        compare("docker.execution.agentSocketRoot", \.docker.execution.agentSocketRoot, .hostMounts)
        // Another network, or none of Berth's firewall rules: the host and metadata addresses.
        compare("docker.execution.userNetwork", \.docker.execution.userNetwork, .network)
        compare("docker.execution.userNetworkFirewall", \.docker.execution.userNetworkFirewall, .network)
        // sudo makes Berth leave no-new-privileges out.
        compare("docker.execution.loginUser.sudo", \.docker.execution.loginUser.sudo, .securityOptions)
        compare("kubernetes.pod.loginUser.sudo", \.kubernetes.pod.loginUser.sudo, .securityOptions)
        // One pod for every user: each can capture the others' terminals.
        compare("kubernetes.pod.persistentShared", \.kubernetes.pod.persistentShared, .sharedPod)
        compare("kubernetes.connection.host", \.kubernetes.connection.host, .engineEndpoint)
        compare("kubernetes.connection.path", \.kubernetes.connection.path, .engineEndpoint)
        compare("kubernetes.connection.serverName", \.kubernetes.connection.serverName, .engineEndpoint)
        compare("kubernetes.connection.insecure", \.kubernetes.connection.insecure, .engineEndpoint)
        compare("kubernetes.connection.cacert", \.kubernetes.connection.cacert, .credentials)
        compare("kubernetes.connection.cert", \.kubernetes.connection.cert, .credentials)
        compare("kubernetes.connection.key", \.kubernetes.connection.key, .credentials)
        compare("kubernetes.connection.bearerToken", \.kubernetes.connection.bearerToken, .credentials)
        compare("kubernetes.connection.bearerTokenFile", \.kubernetes.connection.bearerTokenFile, .credentials)
        compare("kubernetes.connection.kubeconfig", \.kubernetes.connection.kubeconfig, .credentials)
        compare("sshproxy.server", \.sshproxy.server, .proxyTarget)
        compare("sshproxy.port", \.sshproxy.port, .proxyTarget)
        compare("sshproxy.allowedHostKeyFingerprints", \.sshproxy.allowedHostKeyFingerprints, .proxyTarget)
        compare("sshproxy.username", \.sshproxy.username, .proxyTarget)
        compare("sshproxy.usernamePassThrough", \.sshproxy.usernamePassThrough, .proxyTarget)
        compare("sshproxy.ciphers", \.sshproxy.ciphers, .proxyTarget)
        compare("sshproxy.kex", \.sshproxy.kex, .proxyTarget)
        compare("sshproxy.macs", \.sshproxy.macs, .proxyTarget)
        compare("sshproxy.hostKeyAlgorithms", \.sshproxy.hostKeyAlgorithms, .proxyTarget)
        compare("sshproxy.password", \.sshproxy.password, .credentials)
        compare("sshproxy.privateKey", \.sshproxy.privateKey, .credentials)
        // Read once at start (listener, host keys, log and audit files, the webhooks); a
        // per-connection value would name paths on Berth's host and do nothing else.
        compare("ssh", \.ssh, nil)
        compare("auth", \.auth, nil)
        compare("configserver", \.configserver, nil)
        compare("log", \.log, nil)
        compare("metrics", \.metrics, nil)
        compare("health", \.health, nil)
        compare("audit", \.audit, nil)
        compare("console", \.console, nil)
        compare("geoip", { $0.rawSections["geoip"] }, nil)
        // The reaper, the server identity and the volumes serve every user of the server at once.
        compare("persistence", \.persistence, nil)
    }

    // MARK: Docker Engine API objects

    /// A HostConfig, or a container object (whose host keys older engines also read). The
    /// engine decodes JSON keys in any letter case, so keys are compared lowercased.
    mutating func dockerHost(_ value: ConfigValue, _ path: String) {
        for (key, field) in fields(value) {
            let at = "\(path).\(key)"
            switch key.lowercased() {
            case "hostconfig":
                dockerHost(field, at)
            case "privileged":
                if field.isSet { add(at, .privileged) }
            case "binds":
                for (index, bind) in items(field).enumerated() where !isNamedVolumeBind(bind) { add("\(at)[\(index)]", .hostMounts) }
            case "mounts":
                for (index, mount) in items(field).enumerated() where !isOrdinaryMount(mount) { add("\(at)[\(index)]", .hostMounts) }
            case "volumesfrom", "volumedriver":
                if field.isSet { add(at, .hostMounts) }
            case "networkmode", "pidmode", "ipcmode", "utsmode", "usernsmode", "cgroupnsmode", "cgroup":
                if sharesNamespace(field) { add(at, .hostNamespaces) }
            case "portbindings", "publishallports":
                if field.isSet { add(at, .hostNamespaces) }
            case "devices", "devicerequests", "devicecgrouprules":
                if field.isSet { add(at, .devices) }
            case "capadd", "capabilities":
                for (index, name) in items(field).enumerated() where !isOrdinaryCapability(name) { add("\(at)[\(index)]", .capabilities) }
            case "capdrop":
                // Berth drops ALL and adds its set back; a list without ALL gives Docker's defaults.
                if field != .null, !items(field).contains(where: { $0.stringValue?.uppercased() == "ALL" }) { add(at, .capabilities) }
            case "securityopt":
                if field != .null, !isOnlyNoNewPrivileges(field) { add(at, .securityOptions) }
            case "cgroupparent", "runtime", "sysctls", "maskedpaths", "readonlypaths":
                if field != .null { add(at, .securityOptions) }
            case "oomkilldisable":
                // Without the OOM killer for the container, the kernel kills host processes instead.
                if field.isSet { add(at, .securityOptions) }
            case "oomscoreadj":
                if case .int(let score) = field, score >= 0 { continue }
                if field != .null { add(at, .securityOptions) }
            default:
                continue
            }
        }
    }

    /// NetworkingConfig: an endpoint on the network named `host` is the host's network.
    mutating func dockerNetwork(_ value: ConfigValue, _ path: String) {
        for (key, field) in fields(value) where key.lowercased() == "endpointsconfig" {
            for (name, _) in fields(field) where name.lowercased() == "host" { add("\(path).\(key).\(name)", .hostNamespaces) }
        }
    }

    /// `name:/path[:options]` is a named volume; anything else (`/srv:/srv`, `./x:/x`) is a
    /// directory of the host.
    private func isNamedVolumeBind(_ bind: ConfigValue) -> Bool {
        guard let text = bind.stringValue else { return false }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 2, let first = parts.first?.utf8.first, first.isASCIIAlphanumeric else { return false }
        return parts[0].utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }

    /// Volume and tmpfs mounts; a volume with driver options can name a host directory
    /// (`o: bind, device: /etc`), so those count as host mounts too.
    private func isOrdinaryMount(_ mount: ConfigValue) -> Bool {
        let type = field(mount, "type")?.stringValue?.lowercased()
        if type == "tmpfs" { return true }
        guard type == "volume" else { return false }
        guard let options = field(mount, "volumeoptions") else { return true }
        return !(field(options, "driverconfig")?.isSet ?? false)
    }

    private func sharesNamespace(_ mode: ConfigValue) -> Bool {
        guard mode != .null else { return false }
        guard let text = mode.stringValue?.lowercased() else { return true }
        return text == "host" || text.hasPrefix("container:") || text.hasPrefix("ns:")
    }

    private func isOrdinaryCapability(_ name: ConfigValue) -> Bool {
        guard let text = name.stringValue else { return false }
        return ordinaryCapabilities.contains(ConfigWebhookPolicy.capabilityName(text))
    }

    /// Berth's own value in any of its spellings; anything else (an unconfined or custom
    /// seccomp or AppArmor profile, SELinux labels off, or no no-new-privileges) is a change.
    private func isOnlyNoNewPrivileges(_ options: ConfigValue) -> Bool {
        let spellings: Set<String> = ["no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"]
        let given = items(options)
        return !given.isEmpty && given.allSatisfy { $0.stringValue.map { spellings.contains($0.lowercased()) } ?? false }
    }

    // MARK: Kubernetes pods

    mutating func podSpec(_ spec: ConfigValue, _ path: String) {
        for (key, field) in fields(spec) {
            let at = "\(path).\(key)"
            switch key.lowercased() {
            case "hostnetwork", "hostpid", "hostipc":
                if field.isSet { add(at, .hostNamespaces) }
            case "volumes":
                // Other volume types mount a host path, a network share or run a driver on the node.
                let ordinary: Set<String> = ["name", "emptydir", "configmap", "secret", "persistentvolumeclaim", "projected", "downwardapi", "ephemeral"]
                for (index, volume) in items(field).enumerated() {
                    for (name, _) in fields(volume) where !ordinary.contains(name.lowercased()) { add("\(at)[\(index)].\(name)", .hostMounts) }
                }
            case "serviceaccountname", "serviceaccount":
                if field.isSet { add(at, .serviceAccount) }
            case "automountserviceaccounttoken":
                if field != .null && field != .bool(false) { add(at, .serviceAccount) }
            case "nodename":
                if field.isSet { add(at, .nodeName) }
            case "runtimeclassname":
                if field.isSet { add(at, .securityOptions) }
            case "securitycontext":
                securityContext(field, at)
            case "containers", "initcontainers", "ephemeralcontainers":
                for (index, container) in items(field).enumerated() { podContainer(container, "\(at)[\(index)]") }
            default:
                continue
            }
        }
    }

    private mutating func podContainer(_ container: ConfigValue, _ path: String) {
        for (key, field) in fields(container) {
            switch key.lowercased() {
            case "securitycontext":
                securityContext(field, "\(path).\(key)")
            case "ports":
                for (index, port) in items(field).enumerated() {
                    for (name, value) in fields(port) where name.lowercased() == "hostport" && value.isSet {
                        add("\(path).\(key)[\(index)].\(name)", .hostNamespaces)
                    }
                }
            case "volumedevices":
                if field.isSet { add("\(path).\(key)", .devices) }
            default:
                continue
            }
        }
    }

    /// A pod's or a container's securityContext (the pod level has fewer keys; checking the
    /// same list costs nothing).
    private mutating func securityContext(_ context: ConfigValue, _ path: String) {
        for (key, field) in fields(context) {
            let at = "\(path).\(key)"
            switch key.lowercased() {
            case "privileged", "allowprivilegeescalation":
                if field != .null && field != .bool(false) { add(at, .privileged) }
            case "capabilities":
                for (name, list) in fields(field) where name.lowercased() == "add" {
                    for (index, capability) in items(list).enumerated() where !isOrdinaryCapability(capability) { add("\(at).\(name)[\(index)]", .capabilities) }
                }
            case "seccompprofile", "apparmorprofile":
                if let type = self.field(field, "type")?.stringValue?.lowercased(), type == "runtimedefault" { continue }
                if field != .null { add(at, .securityOptions) }
            case "selinuxoptions", "sysctls":
                if field.isSet { add(at, .securityOptions) }
            case "procmount":
                if let mount = field.stringValue, mount.lowercased() == "default" { continue }
                if field != .null { add(at, .securityOptions) }
            case "windowsoptions":
                if self.field(field, "hostprocess")?.isSet ?? false { add(at, .hostNamespaces) }
            default:
                continue
            }
        }
    }

    /// The annotations that older clusters read as seccomp and AppArmor profiles.
    mutating func podMetadata(_ metadata: ConfigValue, _ path: String) {
        for (key, annotations) in fields(metadata) where key.lowercased() == "annotations" {
            for (name, _) in fields(annotations) {
                let lower = name.lowercased()
                if lower.hasPrefix("seccomp.security.alpha.kubernetes.io/") || lower.hasPrefix("container.seccomp.security.alpha.kubernetes.io/")
                    || lower.hasPrefix("container.apparmor.security.beta.kubernetes.io/")
                {
                    add("\(path).\(key).\(name)", .securityOptions)
                }
            }
        }
    }

    // MARK: helpers

    private func fields(_ value: ConfigValue) -> [(key: String, value: ConfigValue)] {
        if case .object(let fields) = value { return fields }
        return []
    }

    /// A list's items; any other value is one item, so a malformed value is still checked.
    private func items(_ value: ConfigValue) -> [ConfigValue] {
        switch value {
        case .null: return []
        case .array(let items): return items
        default: return [value]
        }
    }

    /// The last field of that name in any letter case (the engine's JSON decoder keeps the last).
    private func field(_ value: ConfigValue, _ lowercasedKey: String) -> ConfigValue? {
        fields(value).last { $0.key.lowercased() == lowercasedKey }?.value
    }
}

private extension ConfigValue {
    /// Anything but null, false, zero, an empty string, list or map: a value that does something.
    var isSet: Bool {
        switch self {
        case .null: return false
        case .bool(let flag): return flag
        case .int(let number): return number != 0
        case .double(let number): return number != 0
        case .string(let text): return !text.isEmpty
        case .array(let items): return !items.isEmpty
        case .object(let fields): return !fields.isEmpty
        }
    }
}

extension UInt8 {
    var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
