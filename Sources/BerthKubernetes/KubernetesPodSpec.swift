import BerthConfig
import BerthCore

/// The pod Berth creates: the operator's metadata and spec with Berth's labels, the program of
/// the console container and the environment on every container.
enum KubernetesPodSpec {
    static let connectionLabel = "berth.connection-id"
    static var serverName: String { labelValue(ServerIdentity.name) }
    static var orphanSelector: String { "\(connectionLabel),\(ServerIdentity.label)=\(serverName)" }

    static func body(pod: KubernetesConfig.Pod, metadata: ConnectionMetadata, command: [String], environment: [String: String],
                     tty: Bool, interactive: Bool, name: String? = nil, shared: Bool = false) -> ConfigValue {
        // A shared (persistent) pod belongs to no connection, so no clean-up may remove it.
        var labels: [(key: String, value: ConfigValue)] = shared ? [("berth.persistent", .string("true"))]
            : [(connectionLabel, .string(metadata.connectionID.hex)), (ServerIdentity.label, .string(serverName))]
        let username = labelValue(metadata.effectiveUsername)
        if !username.isEmpty && !shared { labels.append(("berth.username", .string(username))) }
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
            for number in containers.indices {
                var container = containers[number].merging(.object([("env", env)]))
                if number == pod.consoleContainerNumber {
                    container = container.merging(.object([
                        ("command", .array(command.map(ConfigValue.string))), ("args", .array([])),
                        ("stdin", .bool(interactive)), ("stdinOnce", .bool(interactive)), ("tty", .bool(tty)),
                    ]))
                }
                containers[number] = container
            }
            fields[index].value = .array(containers)
            if !fields.contains(where: { $0.key == "restartPolicy" }) { fields.append(("restartPolicy", .string("Never"))) }
            spec = .object(fields)
        }
        return .object([("apiVersion", .string("v1")), ("kind", .string("Pod")), ("metadata", podMetadata), ("spec", spec)])
    }

    /// The console container's name, for exec and attach.
    static func consoleContainer(_ pod: KubernetesConfig.Pod) -> String {
        guard case .array(let containers)? = pod.spec["containers"], pod.consoleContainerNumber < containers.count,
              case .string(let name)? = containers[pod.consoleContainerNumber]["name"] else { return "" }
        return name
    }

    /// Label values: at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
    static func labelValue(_ text: String) -> String {
        let mapped = String(text.map { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) ? $0 : "-" }.prefix(63))
        return String(mapped.drop { !($0.isLetter || $0.isNumber) }.reversed().drop { !($0.isLetter || $0.isNumber) }.reversed())
    }

    static func environment(_ metadata: ConnectionMetadata, expose: Bool) -> [String: String] {
        var environment = metadata.environment.mapValues(\.value)
        if expose { environment.merge(metadata.metadata.mapValues(\.value)) { current, _ in current } }
        return environment
    }

    /// The exec URL query for `command` in the console container.
    static func execQuery(_ command: [String], container: String, tty: Bool, stdin: Bool = true) -> String {
        var parts = command.map { "command=\(KubernetesClient.encode($0))" }
        if !container.isEmpty { parts.append("container=\(KubernetesClient.encode(container))") }
        parts += ["stdin=\(stdin)", "stdout=true", "stderr=\(!tty)", "tty=\(tty)"]
        return parts.joined(separator: "&")
    }
}
