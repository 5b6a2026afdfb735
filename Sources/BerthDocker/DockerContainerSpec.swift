import BerthConfig
import BerthCore

/// The body of `POST /containers/create`: the operator's Engine API objects with Berth's own
/// fields layered on top (docs/configuration.md, "docker").
enum DockerContainerSpec {
    static let connectionLabel = "berth.connection-id"
    /// Pool containers carry the connection label too (value `pool`), so start-up clean-up
    /// finds them after a crash.
    static let poolLabelValue = "pool"

    /// Persistent containers carry the username here instead of the connection label: they
    /// belong to a user, not to a connection or a server.
    static let persistentLabel = "berth.persistent"

    /// Berth's labels for a connection's container.
    static func labels(_ metadata: ConnectionMetadata, owner: ServerIdentity) -> [(String, String)] {
        [(connectionLabel, metadata.connectionID.hex), ("berth.username", metadata.effectiveUsername), ("berth.remote-ip", metadata.remoteAddress.ip)]
            + ownerLabels(owner)
    }

    /// Which server made the container, and where its liveness record is (`DockerLiveness`).
    static func ownerLabels(_ owner: ServerIdentity) -> [(String, String)] {
        [(ServerIdentity.label, owner.name)] + (DockerLiveness.currentPath.map { [(DockerLiveness.label, $0)] } ?? [])
    }

    static func persistentLabels(_ metadata: ConnectionMetadata, owner: ServerIdentity) -> [(String, String)] {
        [(persistentLabel, metadata.effectiveUsername), ("berth.username", metadata.effectiveUsername)] + ownerLabels(owner)
    }

    static func body(
        execution: DockerExecutionConfig, owner: ServerIdentity, metadata: ConnectionMetadata, command: [String], environment: [String: String],
        tty: Bool, interactive: Bool, consoleSize: (rows: UInt32, columns: UInt32)? = nil, network: String? = nil
    ) -> ConfigValue {
        body(
            execution: execution, labels: labels(metadata, owner: owner), command: command, environment: environment, tty: tty, interactive: interactive,
            consoleSize: consoleSize, network: network)
    }

    /// Where the link directory appears in the container.
    static let linkMountPoint = "/run/berth-agent"
    static let linkDirectoryLabel = "berth.agent-link"

    static func body(
        execution: DockerExecutionConfig, labels berthLabels: [(String, String)], command: [String], environment: [String: String],
        tty: Bool, interactive: Bool, consoleSize: (rows: UInt32, columns: UInt32)? = nil, linkDirectory: String? = nil,
        network: String? = nil, volume: (name: String, target: String)? = nil
    ) -> ConfigValue {
        let berthKeys: Set<String> = [
            "image", "cmd", "env", "labels", "tty", "openstdin", "stdinonce", "attachstdin", "attachstdout", "attachstderr", "hostconfig", "networkingconfig",
        ]
        var fields: [(key: String, value: ConfigValue)] = []
        var operatorEnvironment: [String] = []
        var labels: [(key: String, value: ConfigValue)] = []
        if case .object(let given) = execution.container {
            for (key, value) in given {
                switch key.lowercased() {
                case "env":
                    if case .array(let items) = value { operatorEnvironment = items.compactMap { if case .string(let text) = $0 { return text } else { return nil } } }
                case "labels":
                    if case .object(let given) = value { labels = given }
                case _ where berthKeys.contains(key.lowercased()):
                    continue
                default:
                    fields.append((key, value))
                }
            }
        }
        labels += berthLabels.map { ($0.0, ConfigValue.string($0.1)) }
        let env = operatorEnvironment + environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        fields += [
            ("Image", .string(execution.image)),
            ("Cmd", .array(command.map(ConfigValue.string))),
            ("Env", .array(env.map(ConfigValue.string))),
            ("Labels", .object(labels)),
            ("Tty", .bool(tty)),
            ("OpenStdin", .bool(interactive)),
            ("StdinOnce", .bool(interactive)),
            ("AttachStdin", .bool(interactive)),
            ("AttachStdout", .bool(interactive)),
            ("AttachStderr", .bool(interactive)),
            (
                "HostConfig",
                hostConfig(
                    execution.host, consoleSize: consoleSize, linkDirectory: linkDirectory, network: network,
                    setUID: execution.loginUser.mode == .login && execution.loginUser.sudo, volume: volume)
            ),
            ("NetworkingConfig", execution.network),
        ]
        return .object(fields)
    }

    /// Hardening every user container gets unless the operator's `execution.host` sets the same
    /// key (any letter case; the operator's value then replaces Berth's whole): no privilege gain
    /// through set-uid programs, Docker's default capabilities without NET_RAW (ARP spoofing on
    /// the shared bridge) and MKNOD, a process limit so a fork bomb stays in its container, and
    /// memory and CPU limits so one user cannot starve the others. docs/security.md lists them
    /// with the reasons.
    static let hardenedHostConfig: [(key: String, value: ConfigValue)] = [
        ("SecurityOpt", .array([.string("no-new-privileges:true")])),
        ("CapDrop", .array([.string("ALL")])),
        ("CapAdd", .array(ContainerHardening.capabilities.map(ConfigValue.string))),
        ("PidsLimit", .int(4096)),
        ("Memory", .int(2 << 30)),
        // Equal to Memory: no swap on top, so the limit is a limit.
        ("MemorySwap", .int(2 << 30)),
        ("NanoCpus", .int(2_000_000_000)),
    ]

    /// Operator keys that also replace one of Berth's (the engine refuses the mixtures: a swap
    /// limit below a larger memory limit, NanoCpus together with a CFS period or quota).
    static let replacedAlso: [String: Set<String>] = [
        "memoryswap": ["memory"],
        "nanocpus": ["cpuperiod", "cpuquota"],
    ]

    /// The capabilities of `hardenedHostConfig`, and those the operator's own `CapAdd` adds.
    static func capabilities(operatorHost: ConfigValue) -> Set<String> {
        var names: Set<String> = []
        var lists = hardenedHostConfig.filter { $0.key == "CapAdd" }.map(\.value)
        if case .object(let fields) = operatorHost { lists += fields.filter { $0.key.lowercased() == "capadd" }.map(\.value) }
        for case .array(let items) in lists {
            for case .string(let name) in items { names.insert(name) }
        }
        return names
    }

    /// The operator's HostConfig over Berth's hardening, with the terminal size the session asked
    /// for and the agent link directory added to the operator's binds.
    /// `setUID`: the operator turned on sudo for the login user, which is a set-uid program that
    /// `no-new-privileges` would disable, so Berth's `SecurityOpt` is left out.
    private static func hostConfig(
        _ host: ConfigValue, consoleSize: (rows: UInt32, columns: UInt32)?, linkDirectory: String?, network: String?,
        setUID: Bool, volume: (name: String, target: String)? = nil
    ) -> ConfigValue {
        var host = host
        if let network { host = host.merging(.object([("NetworkMode", .string(network))])) }
        if case .object(var fields) = host {
            let given = Set(fields.map { $0.key.lowercased() })
            fields += hardenedHostConfig.filter { hardening in
                let key = hardening.key.lowercased()
                if setUID && key == "securityopt" { return false }
                return !given.contains(key) && given.isDisjoint(with: replacedAlso[key] ?? [])
            }
            host = .object(fields)
        }
        if let consoleSize {
            host = host.merging(.object([("ConsoleSize", .array([.int(Int64(consoleSize.rows)), .int(Int64(consoleSize.columns))]))]))
        }
        if let linkDirectory {
            var binds: [ConfigValue] = []
            if case .array(let given)? = host["Binds"] { binds = given }
            binds.append(.string("\(linkDirectory):\(linkMountPoint):rw"))
            host = host.merging(.object([("Binds", .array(binds))]))
        }
        if let volume {
            var mounts: [ConfigValue] = []
            if case .array(let given)? = host["Mounts"] { mounts = given }
            mounts.append(.object([("Type", .string("volume")), ("Source", .string(volume.name)), ("Target", .string(volume.target))]))
            host = host.merging(.object([("Mounts", .array(mounts))]))
        }
        return host
    }
}
