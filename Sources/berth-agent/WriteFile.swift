#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `write-file [--size N] PATH`: how files from the auth/config webhooks land in a container.
/// Parent directories are not created. `--size` ends after N bytes instead of at EOF, for
/// transports that cannot close stdin (Kubernetes exec before v5.channel.k8s.io).
enum WriteFile {
    static func run(_ arguments: [String]) -> Never {
        var arguments = arguments
        var remaining = Int.max
        if arguments.first == "--size" {
            guard arguments.count >= 2, let size = Int(arguments[1]), size >= 0 else {
                AgentError.fail(1, "write-file --size needs a byte count", usage: true)
            }
            remaining = size
            arguments.removeFirst(2)
        }
        guard arguments.count == 1, let path = arguments.first, !path.isEmpty else {
            AgentError.fail(1, "write-file needs exactly one PATH", usage: true)
        }
        // The contract is 0600 whether the file existed or not.
        let fd: Int32
        switch FileTarget.openForWriting(path, mode: 0o600) {
        case .success(let opened): fd = opened
        case .failure(let error): AgentError.fail(1, error.message)
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        while remaining > 0 {
            let count = read(STDIN_FILENO, &buffer, min(buffer.count, remaining))
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { AgentError.fail(1, "cannot read stdin: \(AgentError.reason)") }
            if count == 0 {
                guard remaining == Int.max else { AgentError.fail(1, "stdin ended \(remaining) bytes short of --size") }
                break
            }
            remaining -= remaining == Int.max ? 0 : count
            guard writeAll(fd, Array(buffer[0..<count])) else { AgentError.fail(1, "cannot write \(path): \(AgentError.reason)") }
        }
        guard close(fd) == 0 else { AgentError.fail(1, "cannot write \(path): \(AgentError.reason)") }
        exit(0)
    }
}
