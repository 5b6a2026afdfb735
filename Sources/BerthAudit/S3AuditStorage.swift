import BerthConfig
import Foundation
import Logging
import NIOConcurrencyHelpers

/// `storage: s3`: each log is written to the staging directory first (`NAME.open` while the
/// connection lasts, with `NAME.meta` beside it), and uploaded once complete. Uploads that fail
/// are retried until they succeed, also after a restart, so an S3 outage loses nothing.
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
        if let data = try? JSONEncoder().encode(info) {
            FileManager.default.createFile(atPath: "\(directory)/\(name).meta", contents: data, attributes: [.posixPermissions: 0o600])
        }
    }
}

actor S3Uploader {
    private let client: S3Client
    private let directory: String
    private let logger: Logger
    private var pending: [String] = []
    private var worker: Task<Void, Never>?
    private var wakeUp: CheckedContinuation<Void, Never>?
    private var stopped = false

    init(client: S3Client, directory: String, logger: Logger) {
        self.client = client
        self.directory = directory
        self.logger = logger
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
        let ready = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { !$0.hasSuffix(".meta") && !$0.hasSuffix(".open") && !$0.hasPrefix(".") }
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
        var delay: Duration = .seconds(1)
        while !stopped {
            guard let name = pending.first else {
                await withCheckedContinuation { wakeUp = $0 }
                continue
            }
            let path = "\(directory)/\(name)"
            guard FileManager.default.fileExists(atPath: path) else {
                pending.removeFirst()
                continue
            }
            let info = (try? JSONDecoder().decode(AuditObjectInfo.self, from: Data(contentsOf: URL(fileURLWithPath: "\(path).meta"))))
                ?? AuditObjectInfo(ip: "", username: "")
            do {
                try await client.upload(key: name, file: path, info: info)
                try? FileManager.default.removeItem(atPath: path)
                try? FileManager.default.removeItem(atPath: "\(path).meta")
                pending.removeFirst()
                delay = .seconds(1)
                logger.log(.debug, "AUDIT_UPLOADED", "audit log uploaded", ["object": "\(name)"])
            } catch {
                if stopped || Task.isCancelled { return }
                logger.log(.warning, "AUDIT_UPLOAD_FAILED", "audit log upload failed; retrying in \(delay): \(error)", ["object": "\(name)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(30))
            }
        }
    }
}
