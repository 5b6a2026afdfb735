import BerthConfig
import Logging

/// What outlives single connections: the storage, and for S3 its uploader.
public final class AuditService: Sendable {
    let storage: any AuditStorage
    private let s3: S3AuditStorage?

    init(config: AuditConfig, logger: Logger) throws {
        switch config.storage {
        case .s3:
            let storage = try S3AuditStorage(config: config.s3, logger: logger)
            self.storage = storage
            s3 = storage
        case .file, .none:
            storage = try FileAuditStorage(directory: config.directory)
            s3 = nil
        }
    }

    /// Starts uploading, including what an earlier run left behind.
    public func start() async { await s3?.uploader.start() }

    /// Waits for the writer queue, then stops uploading.
    public func shutdown() async {
        await AuditRecorder.drain()
        await s3?.uploader.shutdown()
    }
}
