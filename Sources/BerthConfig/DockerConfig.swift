/// The `docker` section (docs/configuration.md, "docker"), ContainerSSH's schema.
public struct DockerConfig: Sendable, Hashable {
    public var connection = DockerConnectionConfig()
    public var execution = DockerExecutionConfig()
    public var timeouts = DockerTimeoutsConfig()

    public init() {}
}

public struct DockerConnectionConfig: Sendable, Hashable {
    public var host = "unix:///var/run/docker.sock"
    public var cacert = ""
    public var cert = ""
    public var key = ""

    public init() {}
}

public enum DockerExecutionMode: String, Sendable, Hashable, CaseIterable {
    /// One container per user, shared by the user's connections and kept between them
    /// (`persistence` says for how long).
    case connection, session, persistent
}

public enum ImagePullPolicy: String, Sendable, Hashable, CaseIterable {
    case always = "Always"
    case ifNotPresent = "IfNotPresent"
    case never = "Never"
}

public struct DockerExecutionConfig: Sendable, Hashable {
    /// Engine API objects passed through to container creation.
    public var container: ConfigValue = .object([("image", .string("berth-guest:latest"))])
    public var host: ConfigValue = .object([])
    public var network: ConfigValue = .object([])
    public var platform: ConfigValue = .object([])
    public var containerName = ""
    public var auth: ConfigValue = .object([])
    public var mode = DockerExecutionMode.connection
    public var idleCommand = ["/usr/bin/containerssh-agent", "wait-signal", "--signal", "INT", "--signal", "TERM"]
    public var shellCommand = ["/bin/bash"]
    public var agentPath = "/usr/bin/containerssh-agent"
    public var disableAgent = false
    /// Host directory under which each container gets the 0700 directory of its agent link
    /// socket (bind-mounted into the container). Empty: always link through `docker exec`.
    public var agentSocketRoot = "/run/berth/agent-links"
    public var subsystems = ["sftp": "/usr/lib/openssh/sftp-server"]
    public var imagePullPolicy = ImagePullPolicy.ifNotPresent
    public var exposeAuthMetadataAsEnv = false
    public var pool = DockerPoolConfig()
    public var loginUser = LoginUserConfig()
    /// The network user containers join when `host`/`network` name none: Berth creates it with
    /// traffic between containers off. Empty: the engine's default bridge.
    public var userNetwork = "berth-users"
    /// iptables rules (local engine, Berth as root) so the user network reaches neither this host
    /// nor link-local addresses.
    public var userNetworkFirewall = true

    public init() {}

    /// The image named in `container` (`image` or the Engine API's `Image`).
    public var image: String {
        if case .string(let name)? = container["Image"] ?? container["image"] { return name }
        return ""
    }
}

/// `execution.pool`: started idle containers kept ready for connection mode, so a login does not
/// wait for `docker run`. Off (size 0) by default.
public struct DockerPoolConfig: Sendable, Hashable {
    public var size = 0
    /// Pool containers older than this are replaced, so an idle pool does not age.
    public var maxAge = BerthDuration.seconds(600)

    public init() {}
}

public struct DockerTimeoutsConfig: Sendable, Hashable {
    public var containerStart = BerthDuration.seconds(60)
    public var containerStop = BerthDuration.seconds(60)
    public var commandStart = BerthDuration.seconds(60)
    public var signal = BerthDuration.seconds(60)
    public var window = BerthDuration.seconds(60)
    public var http = BerthDuration.seconds(15)

    public init() {}
}
