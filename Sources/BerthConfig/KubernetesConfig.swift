/// The `kubernetes` section (docs/configuration.md, "kubernetes"), ContainerSSH's schema plus `kubeconfig`.
public struct KubernetesConfig: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        case connection, session, persistent
    }

    /// How Berth reaches a pod's agent (docs/configuration.md, "kubernetes"): over the pod's IP
    /// (the agent listens there, a per-pod secret keeps other pods out), or one exec WebSocket.
    /// `auto`: the pod's IP when Berth runs in the cluster (`KUBERNETES_SERVICE_HOST` is set).
    public enum AgentLink: String, Sendable, Hashable, CaseIterable {
        case auto
        case podIP
        case exec
    }

    public struct Connection: Sendable, Hashable {
        /// `https://HOST:PORT`, `HOST:PORT` (https) or `http://…`; empty: in-cluster, then `kubeconfig`.
        public var host = ""
        public var path = ""
        /// CA, client certificate and key: PEM text or file paths.
        public var cacert = ""
        public var cert = ""
        public var key = ""
        public var bearerToken = ""
        public var bearerTokenFile = ""
        public var serverName = ""
        public var insecure = false
        /// A kubeconfig file whose current context is used where the keys above are empty.
        public var kubeconfig = ""

        public init() {}
    }

    public struct Pod: Sendable, Hashable {
        /// No namespace by default: the operator names it (users' pods in `default` sit next to
        /// whatever else runs there).
        public var metadata: ConfigValue = .object([("generateName", .string("berth-"))])
        public var spec: ConfigValue = .object([("containers", .array([.object([("name", .string("shell")), ("image", .string("berth-guest:latest"))])]))])
        public var consoleContainerNumber = 0
        public var mode = Mode.connection
        public var createMissingPods = false
        /// Persistent mode: one pod for every user (ContainerSSH's behaviour) instead of one per
        /// user. Any user can then replace the agent and read the next user's session.
        public var persistentShared = false
        public var idleCommand = ["/usr/bin/containerssh-agent", "wait-signal", "--signal", "INT", "--signal", "TERM"]
        public var shellCommand = ["/bin/bash"]
        public var agentPath = "/usr/bin/containerssh-agent"
        public var agentLink = AgentLink.auto
        public var disableAgent = false
        public var subsystems = ["sftp": "/usr/lib/openssh/sftp-server"]
        public var exposeAuthMetadataAsEnv = false
        public var exposeAuthMetadataAsLabels = false
        public var exposeAuthMetadataAsAnnotations = false
        public var loginUser = LoginUserConfig()

        public init() {}

        /// A fixed pod name (persistent mode), or empty when `generateName` is used.
        public var podName: String {
            if case .string(let name)? = metadata["name"] { return name }
            return ""
        }

        /// Persistent mode with a pod per user: the start of each user's pod name.
        public var userPodPrefix: String {
            if !podName.isEmpty { return podName }
            if case .string(let prefix)? = metadata["generateName"] { return prefix }
            return ""
        }

        public var namespace: String {
            if case .string(let name)? = metadata["namespace"] { return name }
            return ""
        }
    }

    public struct Timeouts: Sendable, Hashable {
        public var podStart = BerthDuration.seconds(60)
        public var podStop = BerthDuration.seconds(60)
        public var commandStart = BerthDuration.seconds(60)
        public var signal = BerthDuration.seconds(60)
        public var window = BerthDuration.seconds(60)
        public var http = BerthDuration.seconds(15)

        public init() {}
    }

    public var connection = Connection()
    public var pod = Pod()
    public var timeouts = Timeouts()

    public init() {}

    /// An RFC 1123 label, the form of namespace names (it also keeps the name safe in API paths).
    public static func isDNSLabel(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard (1...63).contains(bytes.count), bytes.first != UInt8(ascii: "-"), bytes.last != UInt8(ascii: "-") else { return false }
        return bytes.allSatisfy { (UInt8(ascii: "a")...UInt8(ascii: "z")).contains($0) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || $0 == UInt8(ascii: "-") }
    }
}

enum KubernetesSectionReader {
    /// `required`: Kubernetes is the backend, so the settings Berth cannot guess must be there.
    static func read(_ reader: inout ObjectReader, required: Bool) -> KubernetesConfig {
        var kubernetes = KubernetesConfig()
        var connection = reader.object("connection")
        for (key, path) in [
            ("host", \KubernetesConfig.Connection.host), ("path", \.path), ("cacert", \.cacert), ("cert", \.cert), ("key", \.key),
            ("bearerToken", \.bearerToken), ("bearerTokenFile", \.bearerTokenFile), ("serverName", \.serverName), ("kubeconfig", \.kubeconfig),
        ] {
            kubernetes.connection[keyPath: path] = connection.string(key, "")
        }
        // ContainerSSH's file-name variants of the same settings.
        for (key, path) in [("cacertFile", \KubernetesConfig.Connection.cacert), ("certFile", \.cert), ("keyFile", \.key)] {
            let value = connection.string(key, "")
            if !value.isEmpty { kubernetes.connection[keyPath: path] = value }
        }
        kubernetes.connection.insecure = connection.bool("insecure", false)
        _ = connection.value("qps")
        _ = connection.value("burst")
        connection.finish()

        var pod = reader.object("pod")
        var defaults = KubernetesConfig.Pod()
        for (key, path) in [("metadata", \KubernetesConfig.Pod.metadata), ("spec", \.spec)] {
            guard let value = pod.value(key) else { continue }
            guard case .object = value else {
                reader.issues.add(pod.keyPath(key), "expected a map (a Kubernetes object), got \(value.brief)")
                continue
            }
            defaults[keyPath: path] = key == "metadata" ? defaults.metadata.merging(value) : value
        }
        defaults.consoleContainerNumber = pod.int("consoleContainerNumber", 0, minimum: 0)
        defaults.mode = pod.choice("mode", defaults.mode)
        defaults.createMissingPods = pod.bool("createMissingPods", false)
        defaults.persistentShared = pod.bool("persistentShared", false)
        defaults.idleCommand = pod.strings("idleCommand", defaults.idleCommand)
        defaults.shellCommand = pod.strings("shellCommand", defaults.shellCommand)
        defaults.agentPath = pod.string("agentPath", defaults.agentPath)
        defaults.agentLink = pod.choice("agentLink", defaults.agentLink)
        defaults.disableAgent = pod.bool("disableAgent", false)
        defaults.exposeAuthMetadataAsEnv = pod.bool("exposeAuthMetadataAsEnv", false)
        defaults.exposeAuthMetadataAsLabels = pod.bool("exposeAuthMetadataAsLabels", false)
        defaults.exposeAuthMetadataAsAnnotations = pod.bool("exposeAuthMetadataAsAnnotations", false)
        var subsystems = pod.object("subsystems")
        if pod.has("subsystems") {
            defaults.subsystems = [:]
            for name in subsystems.keys { defaults.subsystems[name] = subsystems.string(name, "") }
        }
        subsystems.finish()
        if case .array(let containers)? = defaults.spec["containers"] {
            if defaults.consoleContainerNumber >= containers.count {
                reader.issues.add(pod.keyPath("consoleContainerNumber"), "\(defaults.consoleContainerNumber) but the pod has \(containers.count) containers")
            }
        } else {
            reader.issues.add(pod.keyPath("spec.containers"), "required: a list with at least one container")
        }
        if defaults.mode == .persistent && defaults.persistentShared && defaults.podName.isEmpty {
            reader.issues.add(pod.keyPath("metadata.name"), "required in persistent mode with persistentShared")
        }
        if defaults.agentLink == .podIP {
            // The agent on the pod's IP is the pod's main process and ends with its one link.
            let conflict =
                defaults.disableAgent
                ? "disableAgent is set (there is no agent to link to)"
                : defaults.mode == .persistent
                    ? "mode is persistent (the pod's agent must outlive every connection's link)"
                    : defaults.idleCommand != KubernetesConfig.Pod().idleCommand ? "idleCommand is not the default (the agent must be the pod's main process)" : nil
            if let conflict { reader.issues.add(pod.keyPath("agentLink"), "podIP cannot be used: \(conflict); use exec or auto") }
        }
        if defaults.persistentShared && defaults.mode != .persistent {
            reader.issues.add(pod.keyPath("persistentShared"), "only applies in persistent mode (mode is \(defaults.mode.rawValue))")
        }
        if required && defaults.namespace.isEmpty {
            reader.issues.add(pod.keyPath("metadata.namespace"), "required: name the namespace for users' pods (Berth does not fall back to \"default\")")
        } else if !defaults.namespace.isEmpty && !KubernetesConfig.isDNSLabel(defaults.namespace) {
            reader.issues.add(
                pod.keyPath("metadata.namespace"), "\"\(defaults.namespace)\" is not a namespace name (at most 63 of a-z, 0-9 and '-', starting and ending with a letter or digit)")
        }
        if defaults.shellCommand.isEmpty { reader.issues.add(pod.keyPath("shellCommand"), "must not be empty") }
        var loginUser = pod.object("loginUser")
        defaults.loginUser = LoginUserConfig.read(&loginUser)
        if defaults.disableAgent, let (key, problem) = defaults.loginUser.problemWithoutAgent(loginUser.keyPath("mode")) {
            reader.issues.add(key, problem)
        }
        if defaults.disableAgent && defaults.mode != .session {
            reader.issues.add(pod.keyPath("disableAgent"), "the agent is needed in \(defaults.mode.rawValue) mode (Kubernetes exec cannot set the environment)")
        }
        pod.finish()
        kubernetes.pod = defaults

        var timeouts = reader.object("timeouts")
        for (key, path) in [
            ("podStart", \KubernetesConfig.Timeouts.podStart), ("podStop", \.podStop), ("commandStart", \.commandStart),
            ("signal", \.signal), ("window", \.window), ("http", \.http),
        ] {
            kubernetes.timeouts[keyPath: path] = timeouts.duration(key, kubernetes.timeouts[keyPath: path], minimum: .milliseconds(100), allowZero: false)
        }
        if timeouts.has("signal") {
            // Kept so that ContainerSSH files load, but said out loud rather than ignored.
            reader.issues.warn(
                "CONFIG_SETTING_UNUSED: \(timeouts.keyPath("signal")) has no effect: signals go to the agent as link frames, with no API call to bound, and without the agent they are refused"
            )
        }
        timeouts.finish()
        reader.finish()
        return kubernetes
    }
}
