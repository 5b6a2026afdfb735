#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `write-file PATH`: how files from the auth/config webhooks land in a container. Parent
/// directories are not created.
enum WriteFile {
    static func run(_ arguments: [String]) -> Never {
        guard arguments.count == 1, let path = arguments.first, !path.isEmpty else {
            AgentError.fail(1, "write-file needs exactly one PATH", usage: true)
        }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { AgentError.fail(1, "cannot open \(path): \(AgentError.reason)") }
        // O_CREAT leaves an existing file's mode alone (and the umask trims a new one); the
        // contract is 0600 either way.
        guard fchmod(fd, 0o600) == 0 else { AgentError.fail(1, "cannot chmod \(path): \(AgentError.reason)") }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { AgentError.fail(1, "cannot read stdin: \(AgentError.reason)") }
            if count == 0 { break }
            guard writeAll(fd, Array(buffer[0..<count])) else { AgentError.fail(1, "cannot write \(path): \(AgentError.reason)") }
        }
        guard close(fd) == 0 else { AgentError.fail(1, "cannot write \(path): \(AgentError.reason)") }
        exit(0)
    }
}
