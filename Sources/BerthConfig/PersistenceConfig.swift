/// The `persistence` section (docs/configuration.md, "Resumable sessions"): how long a dropped
/// connection's interactive programs wait for their user, and how much of their output is kept.
public struct PersistenceConfig: Sendable, Hashable {
    public var resumeWindow = BerthDuration.seconds(300)
    public var resume = ResumePolicy.auto
    public var resumeBuffer = 65536

    public init() {}
}

/// What a user who opens an interactive shell gets when detached sessions of theirs wait.
public enum ResumePolicy: String, Sendable, Hashable, CaseIterable {
    /// The one detached session is resumed; with several, the user chooses.
    case auto
    /// The user always chooses (a numbered list, and a new shell).
    case menu
    /// A new shell; nothing is resumed.
    case never
}

enum PersistenceSectionReader {
    static func read(_ reader: inout ObjectReader) -> PersistenceConfig {
        var config = PersistenceConfig()
        config.resumeWindow = reader.duration("resumeWindow", config.resumeWindow, minimum: .seconds(1), allowZero: false)
        config.resume = reader.choice("resume", config.resume)
        config.resumeBuffer = reader.int("resumeBuffer", config.resumeBuffer, minimum: 1024)
        if config.resumeBuffer > 1 << 20 {
            reader.issues.add(reader.keyPath("resumeBuffer"), "\(config.resumeBuffer) exceeds the largest buffer, 1048576 bytes")
        }
        reader.finish()
        return config
    }
}
