import BerthConfig
import Foundation

/// Reads what `storage: s3` uploaded, for the console's recordings page (docs/console.md,
/// "Recordings"): the bucket's listing and the objects, with the audit section's credentials.
public final class AuditS3Reader: Sendable {
    private let client: S3Client

    public init(config: AuditConfig.S3) throws {
        client = try S3Client(config: config)
    }

    public func shutdown() async { await client.shutdown() }

    /// Objects under `prefix`, at most `maxObjects`; `complete` is false when there were more.
    public func list(prefix: String = "", maxObjects: Int) async throws -> (objects: [S3ListPage.Object], complete: Bool) {
        try await client.list(prefix: prefix, maxObjects: maxObjects)
    }

    /// The object (its first `firstBytes` when given), nil when S3 has no such key; larger than
    /// `limit` is an error.
    public func get(_ key: String, firstBytes: Int? = nil, limit: Int) async throws -> [UInt8]? {
        try await client.get(key, firstBytes: firstBytes, limit: limit)
    }
}
