import BerthCore
import Foundation
import NIOConcurrencyHelpers

/// The liveness record of a Berth on a local engine: an exclusive flock(2) on
/// `<agentSocketRoot>/servers/<identity>.lock`, held as long as the process lives (the kernel
/// drops it when the process dies, also on SIGKILL). Every container Berth makes carries the
/// file's path (label `berth.liveness`), so any Berth on the same host can tell whether the
/// container's server is alive by trying the lock. Remote engines have no such record: their
/// containers are only ever removed by their own identity (docs/architecture.md, "Ownership and
/// clean-up").
final class DockerLiveness: Sendable {
    static let label = "berth.liveness"
    private static let suffix = ".lock"
    private static let held = NIOLockedValueBox<DockerLiveness?>(nil)

    let path: String
    private let descriptor: Int32

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// The path new containers carry, once this process holds its record.
    static var currentPath: String? { held.withLockedValue { $0?.path } }

    /// Takes this server's record; an identity another live process holds is refused, since two
    /// servers of one identity would each remove the other's containers at start-up.
    static func acquire(root: String, identity: String) throws {
        if held.withLockedValue({ $0 }) != nil { return }
        let directory = root + "/servers"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let name = String(identity.map { $0 == "/" ? "_" : $0 })
        let path = directory + "/" + name + suffix
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            throw DockerError("SERVER_LIVENESS_FAILED", "cannot open the liveness record \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let reason =
                errno == EWOULDBLOCK
                ? "another running Berth uses server identity \(identity); give each instance its own persistence.serverIdentity"
                : "cannot lock the liveness record \(path): \(String(cString: strerror(errno)))"
            close(fd)
            throw DockerError(errno == EWOULDBLOCK ? "SERVER_IDENTITY_IN_USE" : "SERVER_LIVENESS_FAILED", reason)
        }
        held.withLockedValue { $0 = DockerLiveness(path: path, descriptor: fd) }
    }

    enum Owner: Equatable {
        case alive, dead, unknown
    }

    /// Whether the server whose record is at `path` (a container's label) still runs. A path that
    /// is not a record, or one that is not there, is `unknown`: such containers are left alone.
    static func owner(recordedAt path: String?) -> Owner {
        guard let path, path.hasPrefix("/"), path.hasSuffix(suffix), !path.split(separator: "/").contains("..") else { return .unknown }
        if path == currentPath { return .alive }
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else { return .unknown }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return .dead
        }
        return errno == EWOULDBLOCK ? .alive : .unknown
    }
}
