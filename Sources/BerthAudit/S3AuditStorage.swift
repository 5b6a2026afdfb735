import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers

/// `storage: s3`: each log is written to the staging directory first (`NAME.open` while the
/// connection lasts, with `NAME.meta` beside it), and uploaded once complete. Uploads that fail
/// because S3 is unreachable are retried until they succeed, also after a restart, so an S3
/// outage loses nothing; an object S3 keeps refusing is parked (S3Uploader).
final class S3AuditStorage: AuditStorage {
    let directory: String
    let uploader: S3Uploader

    init(config: AuditConfig.S3, logger: Logger) throws {
        directory = config.local
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        uploader = S3Uploader(client: try S3Client(config: config), directory: directory, logger: logger)
    }

    func open(_ name: String, info: AuditObjectInfo) throws -> AuditObjectWriter {
        writeInfo(name, info)
        let uploader = self.uploader
        let staging = "\(directory)/\(name).open"
        let final = "\(directory)/\(name)"
        return try AppendingFile(path: staging) {
            // Complete: from here on the uploader owns the file.
            rename(staging, final)
            Task { await uploader.enqueue(name) }
        }
    }

    func update(_ name: String, info: AuditObjectInfo) { writeInfo(name, info) }

    private func writeInfo(_ name: String, _ info: AuditObjectInfo) {
        if let data = try? JSONCoding.encode(info) {
            FileManager.default.createFile(atPath: "\(directory)/\(name).meta", contents: data, attributes: [.posixPermissions: 0o600])
        }
    }
}

/// Where finished logs go; S3Client in production, a fake in tests.
protocol AuditUploadTarget: Sendable {
    func upload(key: String, file: String, info: AuditObjectInfo) async throws
    func shutdown() async
}

/// Uploads staged logs one at a time. A log whose upload fails goes to the back of the queue,
/// so one bad object cannot hold up the others. A failure while S3 is unreachable or busy
/// (AuditStorageError.outage) is only retried; one where S3 answered and refused, or the
/// request could not be made, counts, and after `maxAttempts` of those the log is parked:
/// moved to `parked/` in the staging directory with an error in the log, never retried by
/// itself; moved back into the staging directory, the next start uploads it.
actor S3Uploader {
    static let defaultMaxAttempts = 5
    static let parkedDirectory = "parked"

    private let client: any AuditUploadTarget
    private let directory: String
    private let logger: Logger
    private let maxAttempts: Int
    private let firstDelay: Duration
    private let maxDelay: Duration
    private var pending: [String] = []
    private var refusals: [String: Int] = [:]
    private var worker: Task<Void, Never>?
    private var wakeUp: CheckedContinuation<Void, Never>?
    private var stopped = false

    init(
        client: any AuditUploadTarget, directory: String, logger: Logger, maxAttempts: Int = defaultMaxAttempts,
        firstDelay: Duration = .seconds(1), maxDelay: Duration = .seconds(30)
    ) {
        self.client = client
        self.directory = directory
        self.logger = logger
        self.maxAttempts = maxAttempts
        self.firstDelay = firstDelay
        self.maxDelay = maxDelay
    }

    /// Picks up what an earlier run left: finished logs not yet uploaded, and logs of
    /// connections a crash cut short (readable up to their last message).
    func start() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names.sorted() where name.hasSuffix(".open") {
            let base = String(name.dropLast(5))
            rename("\(directory)/\(name)", "\(directory)/\(base)")
            logger.log(.notice, "AUDIT_RECOVERED", "audit log of an interrupted connection will be uploaded", ["object": "\(base)"])
        }
        let ready = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { name in
            var isDirectory: ObjCBool = false
            return FileManager.default.fileExists(atPath: "\(directory)/\(name)", isDirectory: &isDirectory) && !isDirectory.boolValue
                && !name.hasSuffix(".meta") && !name.hasSuffix(".open") && !name.hasPrefix(".")
        }
        pending += ready.sorted()
        worker = Task { await self.run() }
    }

    func enqueue(_ name: String) {
        pending.append(name)
        wakeUp?.resume()
        wakeUp = nil
    }

    func shutdown() async {
        stopped = true
        wakeUp?.resume()
        wakeUp = nil
        worker?.cancel()
        await worker?.value
        await client.shutdown()
    }

    /// Number of logs waiting for upload.
    var backlog: Int { pending.count }

    private func run() async {
        var delay = firstDelay
        while !stopped {
            guard let name = pending.first else {
                await withCheckedContinuation { wakeUp = $0 }
                continue
            }
            pending.removeFirst()
            let path = "\(directory)/\(name)"
            guard FileManager.default.fileExists(atPath: path) else { continue }
            let info =
                (try? JSONCoding.decoder().decode(AuditObjectInfo.self, from: Data(contentsOf: URL(fileURLWithPath: "\(path).meta"))))
                ?? AuditObjectInfo(ip: "", username: "")
            do {
                try await client.upload(key: name, file: path, info: info)
                try? FileManager.default.removeItem(atPath: path)
                try? FileManager.default.removeItem(atPath: "\(path).meta")
                refusals[name] = nil
                delay = firstDelay
                logger.log(.debug, "AUDIT_UPLOADED", "audit log uploaded", ["object": "\(name)"])
            } catch {
                if stopped || Task.isCancelled { return }
                if (error as? AuditStorageError)?.outage != true {
                    refusals[name, default: 0] += 1
                }
                if refusals[name, default: 0] >= maxAttempts {
                    refusals[name] = nil
                    park(name, error)
                    continue
                }
                pending.append(name)
                logger.log(.warning, "AUDIT_UPLOAD_FAILED", "audit log upload failed; retrying in \(delay): \(error)", ["object": "\(name)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, maxDelay)
            }
        }
    }

    private func park(_ name: String, _ error: any Error) {
        let parked = "\(directory)/\(Self.parkedDirectory)"
        try? FileManager.default.createDirectory(atPath: parked, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard rename("\(directory)/\(name)", "\(parked)/\(name)") == 0 else {
            logger.log(
                .error, "AUDIT_UPLOAD_PARKED", "audit log refused \(maxAttempts) times and cannot be moved to \(parked); left in place until a restart: \(error)",
                ["object": "\(name)"])
            return
        }
        rename("\(directory)/\(name).meta", "\(parked)/\(name).meta")
        logger.log(.error, "AUDIT_UPLOAD_PARKED", "audit log refused \(maxAttempts) times; moved to \(parked)/\(name), no longer retried: \(error)", ["object": "\(name)"])
    }
}
