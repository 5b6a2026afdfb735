import Foundation

/// Facts about a connection that storages may attach to its objects (S3 metadata).
public struct AuditObjectInfo: Sendable, Codable, Equatable {
    public var ip: String
    public var username: String

    public init(ip: String, username: String) {
        self.ip = ip
        self.username = username
    }
}

/// Where audit logs go. Objects are written as the connection goes; `close` ends one.
protocol AuditStorage: Sendable {
    func open(_ name: String, info: AuditObjectInfo) throws -> AuditObjectWriter
    /// Puts the connection's username into the object's metadata once it is known.
    func update(_ name: String, info: AuditObjectInfo)
}

protocol AuditObjectWriter: AnyObject {
    func append(_ bytes: [UInt8]) throws
    func close()
}

struct AuditStorageError: Error, CustomStringConvertible {
    let description: String
    /// S3 was unreachable or said it is unavailable: nothing is known about the object itself,
    /// so the failure does not count towards parking it (S3Uploader).
    var outage = false
}

/// `storage: file`: one file per object in a directory, each write handed to the kernel at
/// once, so a crash of Berth loses nothing that was recorded.
struct FileAuditStorage: AuditStorage {
    let directory: String

    init(directory: String) throws {
        self.directory = directory
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    func open(_ name: String, info: AuditObjectInfo) throws -> AuditObjectWriter {
        try AppendingFile(path: "\(directory)/\(name)")
    }

    func update(_ name: String, info: AuditObjectInfo) {}
}

/// A file opened for appending with unbuffered writes.
final class AppendingFile: AuditObjectWriter {
    let path: String
    private var fd: Int32
    private let onClose: (() -> Void)?

    init(path: String, onClose: (() -> Void)? = nil) throws {
        self.path = path
        self.onClose = onClose
        fd = Foundation.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AuditStorageError(description: "cannot open \(path): \(String(cString: strerror(errno)))") }
    }

    func append(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                throw AuditStorageError(description: "cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }

    func close() {
        guard fd >= 0 else { return }
        Foundation.close(fd)
        fd = -1
        onClose?()
    }

    deinit { close() }
}
