import BerthConfig
import BerthCore

/// The pod Berth creates: the operator's metadata and spec with Berth's labels and hardening,
/// the program of the console container and (without the agent) the environment on every
/// container.
enum KubernetesPodSpec {
    /// The port the agent listens on for the pod-IP link (`serve --listen`).
    static let agentPort = 7322

    static let connectionLabel = "berth.connection-id"
    /// This server's identity as a label value.
    static func serverName(_ identity: ServerIdentity) -> String { labelValue(identity.name) }
    static func orphanSelector(_ identity: ServerIdentity) -> String { "\(connectionLabel),\(ServerIdentity.label)=\(serverName(identity))" }

    /// What a persistent pod holds: every user's sessions, or one user's.
    enum Persistent {
        case shared, user
    }

    /// `environment` ends up in the pod object, which anyone allowed to read pods (and the API
    /// server's audit log) sees: only for the path without the agent, never sensitive entries.
    static func body(
        pod: KubernetesConfig.Pod, owner: ServerIdentity, metadata: ConnectionMetadata, command: [String], environment: [String: String],
        tty: Bool, interactive: Bool, name: String? = nil, persistent: Persistent? = nil
    ) -> ConfigValue {
        let serverName = serverName(owner)
        // A persistent pod belongs to no connection, so no clean-up may remove it.
        var labels: [(key: String, value: ConfigValue)] =
            persistent != nil
            ? [("berth.persistent", .string("true"))]
            : [(connectionLabel, .string(metadata.connectionID.hex)), (ServerIdentity.label, .string(serverName))]
        let username = labelValue(metadata.effectiveUsername)
        if !username.isEmpty && persistent != .shared { labels.append(("berth.username", .string(username))) }
        // Which server's `persistence` timers look after a user's pod after a restart.
        if persistent == .user { labels.append((ServerIdentity.label, .string(serverName))) }
        var annotations: [(key: String, value: ConfigValue)] = [("berth.remote-ip", .string(metadata.remoteAddress.ip))]
        for (key, value) in metadata.metadata.sorted(by: { $0.key < $1.key }) where !value.sensitive {
            if pod.exposeAuthMetadataAsLabels { labels.append((key, .string(labelValue(value.value)))) }
            if pod.exposeAuthMetadataAsAnnotations { annotations.append((key, .string(value.value))) }
        }
        var podMetadata = pod.metadata.merging(.object([("labels", .object(labels)), ("annotations", .object(annotations))]))
        if let name {
            podMetadata = podMetadata.merging(.object([("name", .string(name))]))
        }
        var spec = pod.spec
        if case .object(var fields) = spec, let index = fields.firstIndex(where: { $0.key == "containers" }), case .array(var containers) = fields[index].value {
            let env = ConfigValue.array(environment.sorted { $0.key < $1.key }.map { .object([("name", .string($0.key)), ("value", .string($0.value))]) })
            let podSeccomp = pod.spec["securityContext"]?["seccompProfile"] != nil
            for number in containers.indices {
                var container = hardened(containers[number], podSeccomp: podSeccomp)
                if !environment.isEmpty {
                    // After the operator's own entries: for a name given twice the last one counts.
                    var list: [ConfigValue] = []
                    if case .array(let given)? = container["env"] { list = given }
                    if case .array(let added) = env { list += added }
                    container = container.merging(.object([("env", .array(list))]))
                }
                if number == pod.consoleContainerNumber {
                    container = container.merging(
                        .object([
                            ("command", .array(command.map(ConfigValue.string))), ("args", .array([])),
                            ("stdin", .bool(interactive)), ("stdinOnce", .bool(interactive)), ("tty", .bool(tty)),
                        ]))
                }
                containers[number] = container
            }
            fields[index].value = .array(containers)
            if !fields.contains(where: { $0.key == "restartPolicy" }) { fields.append(("restartPolicy", .string("Never"))) }
            // A user's shell has no business with the cluster's API under the pod's identity.
            if !fields.contains(where: { $0.key == "automountServiceAccountToken" }) { fields.append(("automountServiceAccountToken", .bool(false))) }
            spec = .object(fields)
        }
        return .object([("apiVersion", .string("v1")), ("kind", .string("Pod")), ("metadata", podMetadata), ("spec", spec)])
    }

    /// The container securityContext keys Berth sets where the operator's container does not set
    /// them (the operator's value then replaces Berth's whole): no privilege gain through set-uid
    /// programs, the same capabilities as Docker containers get, the runtime's seccomp filter.
    /// Not runAsNonRoot: the agent starts as root to create the login user and drop to it.
    static let hardenedSecurityContext: [(key: String, value: ConfigValue)] = [
        ("allowPrivilegeEscalation", .bool(false)),
        ("capabilities", .object([("drop", .array([.string("ALL")])), ("add", .array(ContainerHardening.capabilities.map(ConfigValue.string)))])),
        ("seccompProfile", .object([("type", .string("RuntimeDefault"))])),
    ]

    /// Resources of a container whose spec has none: limits so one user cannot starve the node,
    /// small requests so that the limits do not reserve a node's capacity per pod.
    static let defaultResources: ConfigValue = .object([
        ("limits", .object([("cpu", .string("2")), ("memory", .string("2Gi"))])),
        ("requests", .object([("cpu", .string("100m")), ("memory", .string("128Mi"))])),
    ])

    /// `podSeccomp`: the pod's securityContext names a seccomp profile, which a container value
    /// would override.
    private static func hardened(_ container: ConfigValue, podSeccomp: Bool) -> ConfigValue {
        guard case .object(var fields) = container else { return container }
        var context: [(key: String, value: ConfigValue)] = []
        if let index = fields.firstIndex(where: { $0.key == "securityContext" }) {
            guard case .object(let given) = fields[index].value else { return container }
            context = given
            fields.remove(at: index)
        }
        // The API server refuses allowPrivilegeEscalation false next to privileged or SYS_ADMIN,
        // which the operator asked for on purpose.
        let given = ConfigValue.object(context)
        var added: [ConfigValue] = []
        if case .array(let list)? = given["capabilities"]?["add"] { added = list }
        let escalates = given["privileged"] == .bool(true) || added.contains { ["SYS_ADMIN", "CAP_SYS_ADMIN"].contains($0.stringValue ?? "") }
        for (key, value) in hardenedSecurityContext where !context.contains(where: { $0.key == key }) {
            if key == "seccompProfile" && podSeccomp { continue }
            if key == "allowPrivilegeEscalation" && escalates { continue }
            context.append((key, value))
        }
        fields.append(("securityContext", .object(context)))
        if !fields.contains(where: { $0.key == "resources" }) { fields.append(("resources", defaultResources)) }
        return .object(fields)
    }

    /// The console container's name, for exec and attach.
    static func consoleContainer(_ pod: KubernetesConfig.Pod) -> String {
        guard case .array(let containers)? = pod.spec["containers"], pod.consoleContainerNumber < containers.count,
            case .string(let name)? = containers[pod.consoleContainerNumber]["name"]
        else { return "" }
        return name
    }

    /// Label values: at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
    static func labelValue(_ text: String) -> String {
        let mapped = String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "-" }.prefix(63))
        return String(mapped.drop { !($0.isLetter || $0.isNumber) }.reversed().drop { !($0.isLetter || $0.isNumber) }.reversed())
    }

    /// The exec URL query for `command` in the console container.
    static func execQuery(_ command: [String], container: String, tty: Bool, stdin: Bool = true) -> String {
        var parts = command.map { "command=\(KubernetesClient.encode($0))" }
        if !container.isEmpty { parts.append("container=\(KubernetesClient.encode(container))") }
        parts += ["stdin=\(stdin)", "stdout=true", "stderr=\(!tty)", "tty=\(tty)"]
        return parts.joined(separator: "&")
    }
}
