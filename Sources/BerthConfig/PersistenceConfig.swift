/// The `persistence` section (Berth extension): how long a user's persistent container (Docker
/// `execution.mode: persistent`) or pod (Kubernetes `pod.mode: persistent`) lives, the per-user
/// volume that outlives it, resumable sessions, and the server identity that orphan clean-up
/// goes by. docs/configuration.md documents the keys; docs/architecture.md the lifecycle.
public struct PersistenceConfig: Sendable, Hashable {
    /// Who owns containers and pods (their `berth.server` label). Empty: host name and listen
    /// address, as before. Two instances that share an engine must have different ones.
    public var serverIdentity = ""
    /// A persistent container or pod with no connection for this long is removed. 0: never.
    public var idleTimeout = BerthDuration.seconds(1800)
    /// A persistent container or pod older than this is removed, with its connections. 0: no limit.
    public var maxLifetime = BerthDuration.zero
    public var volume = PersistenceVolumeConfig()
    /// How long a pty session stays alive after its connection drops. 0: resumable sessions off.
    public var resumeWindow = BerthDuration.seconds(300)
    public var resume = ResumePolicy.auto
    /// Bytes of a detached session's most recent output kept for the replay.
    public var resumeBuffer = 65536

    /// The agent keeps at most one frame's payload (1 MiB) of a detached session's output.
    public static let resumeBufferRange = 1024...(1 << 20)

    public init() {}
}

/// What happens when a user with detached sessions opens an interactive shell.
public enum ResumePolicy: String, Sendable, Hashable, CaseIterable {
    case auto, menu, never
}

/// `persistence.volume`: a named volume (Docker) or PersistentVolumeClaim (Kubernetes) per
/// user, mounted at the user's home, that survives the container or pod.
public struct PersistenceVolumeConfig: Sendable, Hashable {
    public var enabled = false
    /// Volumes are named `<namePrefix>-<readable user>-<hash of the exact username>`.
    public var namePrefix = "berth-home"
    /// Empty: the login account's home (`loginUser.homeRoot/<account>`), or /root when programs
    /// run as the container's own user.
    public var mountPath = ""
    /// Kubernetes: the claim's `resources.requests.storage` (a quantity).
    public var size = "1Gi"
    /// Kubernetes: the claim's `storageClassName`. Empty: the cluster's default class.
    public var storageClass = ""

    public init() {}
}

enum PersistenceSectionReader {
    static func read(_ reader: inout ObjectReader) -> PersistenceConfig {
        var config = PersistenceConfig()
        config.serverIdentity = reader.string("serverIdentity", config.serverIdentity)
        if !config.serverIdentity.isEmpty && !isIdentity(config.serverIdentity) {
            reader.issues.add(
                reader.keyPath("serverIdentity"),
                "must be 1-63 characters of A-Z a-z 0-9 _ . - starting and ending with a letter or digit, got \(config.serverIdentity.debugDescription)")
        }
        config.idleTimeout = reader.duration("idleTimeout", config.idleTimeout, minimum: .seconds(1))
        config.maxLifetime = reader.duration("maxLifetime", config.maxLifetime, minimum: .seconds(1))
        var volume = reader.object("volume")
        config.volume.enabled = volume.bool("enabled", config.volume.enabled)
        config.volume.namePrefix = volume.string("namePrefix", config.volume.namePrefix)
        if !isIdentity(config.volume.namePrefix) || config.volume.namePrefix.count > 40 {
            reader.issues.add(
                volume.keyPath("namePrefix"),
                "must be 1-40 characters of A-Z a-z 0-9 _ . - starting and ending with a letter or digit, got \(config.volume.namePrefix.debugDescription)")
        }
        config.volume.mountPath = volume.string("mountPath", config.volume.mountPath)
        if !config.volume.mountPath.isEmpty && (!config.volume.mountPath.hasPrefix("/") || config.volume.mountPath.contains(":") || config.volume.mountPath == "/") {
            reader.issues.add(volume.keyPath("mountPath"), "must be an absolute path other than / and without \":\", got \(config.volume.mountPath.debugDescription)")
        }
        config.volume.size = volume.string("size", config.volume.size)
        if !isQuantity(config.volume.size) {
            reader.issues.add(volume.keyPath("size"), "must be a positive Kubernetes quantity such as 1Gi, 500Mi or 10G, got \(config.volume.size.debugDescription)")
        }
        config.volume.storageClass = volume.string("storageClass", config.volume.storageClass)
        if !config.volume.storageClass.isEmpty && !isSubdomain(config.volume.storageClass) {
            reader.issues.add(
                volume.keyPath("storageClass"),
                "must be a storage class name (at most 253 lowercase letters, digits, - and ., starting and ending with a letter or digit), got \(config.volume.storageClass.debugDescription)"
            )
        }
        volume.finish()
        config.resumeWindow = reader.duration("resumeWindow", config.resumeWindow, minimum: .seconds(1))
        config.resume = reader.choice("resume", config.resume)
        config.resumeBuffer = reader.int("resumeBuffer", config.resumeBuffer, minimum: 0)
        if !PersistenceConfig.resumeBufferRange.contains(config.resumeBuffer) {
            reader.issues.add(
                reader.keyPath("resumeBuffer"),
                "must be between \(PersistenceConfig.resumeBufferRange.lowerBound) and \(PersistenceConfig.resumeBufferRange.upperBound) bytes, got \(config.resumeBuffer)")
            config.resumeBuffer = PersistenceConfig().resumeBuffer
        }
        reader.finish()
        return config
    }

    /// A storage request the API server accepts: a positive number (at most 18 digits before and
    /// 9 after the point, no exponent form) with an optional binary or decimal suffix.
    static func isQuantity(_ text: String) -> Bool {
        let suffixes = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", ""]
        guard let suffix = suffixes.first(where: { text.hasSuffix($0) }) else { return false }
        let number = text.dropLast(suffix.count).split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        guard let whole = number.first, (1...18).contains(whole.count), whole.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        var positive = whole.contains { $0 != "0" }
        if number.count == 2 {
            let fraction = number[1]
            guard (1...9).contains(fraction.count), fraction.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
            positive = positive || fraction.contains { $0 != "0" }
        }
        return positive
    }

    /// An RFC 1123 subdomain, as Kubernetes object names are.
    static func isSubdomain(_ text: String) -> Bool {
        guard (1...253).contains(text.utf8.count) else { return false }
        return text.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { label in
            guard let first = label.utf8.first, let last = label.utf8.last, label.utf8.count <= 63 else { return false }
            let lowerOrDigit = { (c: UInt8) in (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) }
            return lowerOrDigit(first) && lowerOrDigit(last) && label.utf8.allSatisfy { lowerOrDigit($0) || $0 == UInt8(ascii: "-") }
        }
    }

    /// Usable as a Docker object name part and a Kubernetes label value.
    static func isIdentity(_ text: String) -> Bool {
        guard (1...63).contains(text.utf8.count), let first = text.utf8.first, let last = text.utf8.last,
            first.isASCIIAlphanumeric, last.isASCIIAlphanumeric
        else { return false }
        return text.utf8.allSatisfy { $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") }
    }
}
