/// `execution.loginUser` (Docker) / `pod.loginUser` (Kubernetes): who the user's programs run as
/// in the container. By default the person who logged in: the agent adds the account (see
/// docs/security.md, "Who programs run as").
public struct LoginUserConfig: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable, CaseIterable {
        /// The authenticated username, added to the container if the image lacks it.
        case login
        /// Whatever the container runs as: root, unless the image or the container spec says otherwise.
        case container
    }

    public var mode = Mode.login
    /// For an account the agent adds; the next free one if the image uses it.
    public var uid: UInt32 = 1000
    /// nil: the same number as the uid (a group of the user's own).
    public var gid: UInt32?
    /// Homes are `<homeRoot>/<name>`.
    public var homeRoot = "/home"
    /// Used if the image has it, else bash, else sh.
    public var shell = "/bin/bash"
    /// Passwordless sudo for the user, if the image has sudo (the Docker backend then leaves out
    /// its no-new-privileges default, which would disable sudo).
    public var sudo = false
    /// Whether the operator wrote `mode` (a default `login` falls back quietly where no agent runs).
    public var modeConfigured = false

    public init() {}

    static func read(_ reader: inout ObjectReader) -> LoginUserConfig {
        var config = LoginUserConfig()
        config.modeConfigured = reader.has("mode")
        config.mode = reader.choice("mode", config.mode)
        // Past 2^31-1 some libcs and tools take ids for negative numbers.
        func id(_ key: String, _ fallback: Int, minimum: Int) -> UInt32 {
            let value = reader.int(key, fallback, minimum: minimum)
            guard value <= 2_147_483_647 else {
                reader.issues.add(reader.keyPath(key), "at most 2147483647, got \(value)")
                return UInt32(fallback)
            }
            return UInt32(max(value, 0))
        }
        config.uid = id("uid", Int(config.uid), minimum: 1)
        if reader.has("gid") { config.gid = id("gid", 0, minimum: 0) }
        config.homeRoot = reader.string("homeRoot", config.homeRoot)
        config.shell = reader.string("shell", config.shell)
        config.sudo = reader.bool("sudo", config.sudo)
        for (key, path) in [("homeRoot", config.homeRoot), ("shell", config.shell)]
        where !path.hasPrefix("/") || path.contains(where: { $0 == ":" || $0 == "\n" || $0 == "\0" }) {
            reader.issues.add(reader.keyPath(key), "must be an absolute path without ':' or line breaks, got \(path.debugDescription)")
        }
        reader.finish()
        return config
    }

    /// The refusal for a configuration that runs programs without the agent.
    func problemWithoutAgent(_ keyPath: String) -> (String, String)? {
        guard mode == .login && modeConfigured else { return nil }
        return (keyPath, "mode login needs the agent (disableAgent is set); use mode: container")
    }
}
