#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Opens the target of a file write (`write-file`, the link's `writeFile`) the one safe way, so
/// that what a user planted at the path cannot redirect the write: the agent runs as root, and
/// a symlink at `~/.ssh/config` pointing at `/etc/shadow` would otherwise have it overwritten.
/// Only the last component is checked; parent directories are the operator's choice of path.
enum FileTarget {
    /// The open descriptor, truncated and with exactly `mode`, or a message for the error.
    static func openForWriting(_ path: String, mode: mode_t) -> Result<Int32, FileTargetError> {
        // O_NOFOLLOW: a symlink is ELOOP instead of being followed. O_NONBLOCK: a FIFO planted
        // there fails (no reader) instead of hanging the agent; it has no effect on files.
        // No O_TRUNC yet: only a regular file may be truncated.
        let fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, mode)
        guard fd >= 0 else {
            if errno == ELOOP { return .failure(FileTargetError("cannot open \(path): it is a symbolic link, which is not followed")) }
            return .failure(FileTargetError("cannot open \(path): \(AgentError.reason)"))
        }
        var info = stat()
        guard fstat(fd, &info) == 0 else { return failing(fd, "cannot stat \(path): \(AgentError.reason)") }
        guard info.st_mode & S_IFMT == S_IFREG else { return failing(fd, "cannot write \(path): it is not a regular file") }
        guard ftruncate(fd, 0) == 0 else { return failing(fd, "cannot truncate \(path): \(AgentError.reason)") }
        // O_CREAT leaves an existing file's mode alone and the umask trims a new one.
        guard fchmod(fd, mode) == 0 else { return failing(fd, "cannot chmod \(path): \(AgentError.reason)") }
        return .success(fd)
    }

    private static func failing(_ fd: Int32, _ message: String) -> Result<Int32, FileTargetError> {
        let error = FileTargetError(message)
        close(fd)
        return .failure(error)
    }
}

struct FileTargetError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}
