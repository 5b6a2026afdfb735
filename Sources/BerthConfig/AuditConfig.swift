/// The `audit` section (docs/configuration.md, "audit"), ContainerSSH's schema.
public struct AuditConfig: Sendable, Hashable {
    public enum Format: String, Sendable, Hashable, CaseIterable {
        case none, binary, asciinema
    }

    public enum Storage: String, Sendable, Hashable, CaseIterable {
        case none, file, s3
    }

    public struct Intercept: Sendable, Hashable {
        public var stdin = false
        public var stdout = false
        public var stderr = false
        public var passwords = false
        public var forwarding = false

        public init() {}
    }

    public struct S3: Sendable, Hashable {
        /// Staging directory: logs are complete here before they are uploaded.
        public var local = "/var/lib/berth/audit"
        public var accessKey = ""
        public var secretKey = ""
        public var bucket = ""
        public var region = "us-east-1"
        public var endpoint = ""
        public var cacert = ""
        public var acl = ""
        public var pathStyleAccess = false
        public var uploadPartSize = 5 * 1024 * 1024
        public var parallelUploads = 20
        public var metadataIP = false
        public var metadataUsername = false

        public init() {}
    }

    public var enable = false
    public var format = Format.none
    public var storage = Storage.none
    public var intercept = Intercept()
    public var directory = "/var/log/audit"
    public var s3 = S3()

    public init() {}

    /// Recording happens only when it is enabled and has somewhere to go.
    public var isActive: Bool { enable && format != .none && storage != .none }
}

enum AuditSectionReader {
    static func read(_ reader: inout ObjectReader) -> AuditConfig {
        var audit = AuditConfig()
        audit.enable = reader.bool("enable", audit.enable)
        audit.format = reader.choice("format", audit.format)
        audit.storage = reader.choice("storage", audit.storage)
        var intercept = reader.object("intercept")
        for (key, path) in [("stdin", \AuditConfig.Intercept.stdin), ("stdout", \.stdout), ("stderr", \.stderr), ("passwords", \.passwords), ("forwarding", \.forwarding)] {
            audit.intercept[keyPath: path] = intercept.bool(key, false)
        }
        intercept.finish()
        var file = reader.object("file")
        audit.directory = file.string("directory", audit.directory)
        file.finish()
        var s3 = reader.object("s3")
        for (key, path) in [
            ("local", \AuditConfig.S3.local), ("accessKey", \.accessKey), ("secretKey", \.secretKey), ("bucket", \.bucket),
            ("region", \.region), ("endpoint", \.endpoint), ("cacert", \.cacert), ("acl", \.acl),
        ] {
            audit.s3[keyPath: path] = s3.string(key, audit.s3[keyPath: path])
        }
        audit.s3.pathStyleAccess = s3.bool("pathStyleAccess", false)
        audit.s3.uploadPartSize = s3.int("uploadPartSize", audit.s3.uploadPartSize, minimum: 5 * 1024 * 1024)
        audit.s3.parallelUploads = s3.int("parallelUploads", audit.s3.parallelUploads, minimum: 1)
        var metadata = s3.object("metadata")
        audit.s3.metadataIP = metadata.bool("ip", false)
        audit.s3.metadataUsername = metadata.bool("username", false)
        metadata.finish()
        if audit.enable && audit.storage == .s3 {
            for (key, value) in [("bucket", audit.s3.bucket), ("accessKey", audit.s3.accessKey), ("secretKey", audit.s3.secretKey), ("local", audit.s3.local)]
            where value.isEmpty {
                reader.issues.add(s3.keyPath(key), "required with storage s3")
            }
            if !audit.s3.endpoint.isEmpty && !(audit.s3.endpoint.hasPrefix("http://") || audit.s3.endpoint.hasPrefix("https://")) {
                reader.issues.add(s3.keyPath("endpoint"), "must start with http:// or https://")
            }
        }
        s3.finish()
        if audit.enable && audit.storage == .file && audit.directory.isEmpty {
            reader.issues.add(reader.keyPath("file.directory"), "required with storage file")
        }
        if audit.enable && (audit.format == .none) != (audit.storage == .none) {
            reader.issues.add(reader.keyPath("format"), "format \(audit.format.rawValue) and storage \(audit.storage.rawValue) do not go together; set both or neither to none")
        }
        reader.finish()
        return audit
    }
}
