#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `write-file PATH`: files from the auth/config webhooks land in the container this way.
enum WriteFile {
    static func run(_ arguments: [String]) -> Never {
        guard arguments.count == 1 else { AgentError.fail(1, "write-file needs exactly one PATH", usage: true) }
        let path = arguments[0]
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { AgentError.fail(1, "cannot open \(path): \(String(cString: strerror(errno)))") }
        // An existing file keeps its old mode with O_CREAT; the contract is 0600.
        fchmod(fd, 0o600)
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { AgentError.fail(1, "cannot read stdin: \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            guard writeAll(fd, Array(buffer[0..<count])) else { AgentError.fail(1, "cannot write \(path): \(String(cString: strerror(errno)))") }
        }
        guard close(fd) == 0 else { AgentError.fail(1, "cannot write \(path): \(String(cString: strerror(errno)))") }
        exit(0)
    }
}
