/// Reads the `docker` section strictly; the Engine API objects inside it are passed through.
enum DockerSectionReader {
    static func read(_ reader: inout ObjectReader) -> DockerConfig {
        var docker = DockerConfig()
        var connection = reader.object("connection")
        docker.connection.host = connection.string("host", docker.connection.host)
        if !(docker.connection.host.hasPrefix("unix://") || docker.connection.host.hasPrefix("tcp://")) {
            reader.issues.add(connection.keyPath("host"), "\"\(docker.connection.host)\" must start with unix:// or tcp://")
        }
        docker.connection.cacert = connection.string("cacert", "")
        docker.connection.cert = connection.string("cert", "")
        docker.connection.key = connection.string("key", "")
        connection.finish()

        var execution = reader.object("execution")
        var defaults = DockerExecutionConfig()
        for (key, path) in [("container", \DockerExecutionConfig.container), ("host", \.host), ("network", \.network), ("platform", \.platform), ("auth", \.auth)] {
            if let value = execution.value(key) {
                guard case .object = value else {
                    reader.issues.add(execution.keyPath(key), "expected a map (an Engine API object), got \(value.brief)")
                    continue
                }
                // A container object without an image keeps the default image.
                let namesImage = value["image"] != nil || value["Image"] != nil
                defaults[keyPath: path] = key == "container" && !namesImage ? DockerExecutionConfig().container.merging(value) : value
            }
        }
        defaults.containerName = execution.string("containername", "")
        defaults.mode = execution.choice("mode", defaults.mode)
        defaults.idleCommand = execution.strings("idleCommand", defaults.idleCommand)
        defaults.shellCommand = execution.strings("shellCommand", defaults.shellCommand)
        defaults.agentPath = execution.string("agentPath", defaults.agentPath)
        defaults.disableAgent = execution.bool("disableAgent", defaults.disableAgent)
        defaults.agentSocketRoot = execution.string("agentSocketRoot", defaults.agentSocketRoot)
        // Any length: Berth reaches a socket whose path does not fit a unix address through its
        // directory's descriptor.
        if !defaults.agentSocketRoot.isEmpty && !defaults.agentSocketRoot.hasPrefix("/") {
            reader.issues.add(execution.keyPath("agentSocketRoot"), "must be an absolute path")
        }
        defaults.imagePullPolicy = execution.choice("imagePullPolicy", defaults.imagePullPolicy)
        defaults.exposeAuthMetadataAsEnv = execution.bool("exposeAuthMetadataAsEnv", defaults.exposeAuthMetadataAsEnv)
        var subsystems = execution.object("subsystems")
        if execution.has("subsystems") {
            defaults.subsystems = [:]
            for name in subsystems.keys {
                defaults.subsystems[name] = subsystems.string(name, "")
            }
        }
        subsystems.finish()
        defaults.userNetwork = execution.string("userNetwork", defaults.userNetwork)
        if !defaults.userNetwork.isEmpty && !defaults.userNetwork.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_.-".contains($0)) }) {
            reader.issues.add(execution.keyPath("userNetwork"), "must be a Docker network name ([A-Za-z0-9_.-]), got \(defaults.userNetwork.debugDescription)")
        }
        defaults.userNetworkFirewall = execution.bool("userNetworkFirewall", defaults.userNetworkFirewall)
        var loginUser = execution.object("loginUser")
        defaults.loginUser = LoginUserConfig.read(&loginUser)
        if defaults.disableAgent, let (key, problem) = defaults.loginUser.problemWithoutAgent(loginUser.keyPath("mode")) {
            reader.issues.add(key, problem)
        }
        var pool = execution.object("pool")
        defaults.pool.size = pool.int("size", 0, minimum: 0)
        defaults.pool.maxAge = pool.duration("maxAge", defaults.pool.maxAge, minimum: .seconds(1), allowZero: false)
        if defaults.pool.size > 200 { reader.issues.add(pool.keyPath("size"), "at most 200, got \(defaults.pool.size)") }
        if defaults.pool.size > 0 && defaults.mode == .session {
            reader.issues.add(pool.keyPath("size"), "the pool works in connection mode only")
        }
        if defaults.pool.size > 0 && !defaults.containerName.isEmpty {
            reader.issues.add(pool.keyPath("size"), "the pool cannot be used with a fixed containername")
        }
        if defaults.pool.size > 0 && defaults.mode == .persistent {
            // Labels and mounts are fixed at creation: a pool container could not carry the
            // user's name label (how a restarted Berth finds it) nor the user's volume.
            reader.issues.add(pool.keyPath("size"), "the pool cannot be used in persistent mode (docs/configuration.md, \"persistence\")")
        }
        pool.finish()
        if defaults.mode == .persistent && defaults.disableAgent {
            reader.issues.add(execution.keyPath("disableAgent"), "persistent mode needs the agent: its containers outlive connections and are reached only through it")
        }
        if defaults.mode == .persistent && !defaults.containerName.isEmpty {
            reader.issues.add(execution.keyPath("containername"), "persistent mode names each user's container itself")
        }
        if defaults.image.isEmpty { reader.issues.add(execution.keyPath("container.image"), "required") }
        if defaults.shellCommand.isEmpty { reader.issues.add(execution.keyPath("shellCommand"), "must not be empty") }
        if defaults.idleCommand.isEmpty { reader.issues.add(execution.keyPath("idleCommand"), "must not be empty") }
        execution.finish()
        docker.execution = defaults

        var timeouts = reader.object("timeouts")
        for (key, path) in [
            ("containerStart", \DockerTimeoutsConfig.containerStart), ("containerStop", \.containerStop), ("commandStart", \.commandStart), ("signal", \.signal),
            ("window", \.window), ("http", \.http),
        ] {
            docker.timeouts[keyPath: path] = timeouts.duration(key, docker.timeouts[keyPath: path], minimum: .milliseconds(100), allowZero: false)
        }
        timeouts.finish()
        reader.finish()
        return docker
    }
}
