#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `console`: prepare and then replace this process with the user's program, so that the PID
/// reported with --pid is the program's own PID (signals go straight to it).
enum Console {
    static func run(_ arguments: [String]) -> Never {
        var environment: [String] = []
        var wait = false
        var reportPID = false
        var index = 0
        while index < arguments.count, arguments[index] != "--" {
            switch arguments[index] {
            case "--env":
                guard index + 1 < arguments.count, arguments[index + 1].contains("=") else { AgentError.fail(1, "--env needs NAME=VALUE", usage: true) }
                environment.append(arguments[index + 1])
                index += 1
            case "--wait": wait = true
            case "--pid": reportPID = true
            default: AgentError.fail(1, "unknown console option \(arguments[index])", usage: true)
            }
            index += 1
        }
        let program = Array(arguments.dropFirst(index + 1))
        guard index < arguments.count, let path = program.first else { AgentError.fail(1, "console needs -- PROGRAM", usage: true) }
        if wait { waitForStartByte() }
        if reportPID {
            let pid = UInt32(bitPattern: getpid())
            let bytes = [UInt8(pid & 0xFF), UInt8((pid >> 8) & 0xFF), UInt8((pid >> 16) & 0xFF), UInt8(pid >> 24)]
            guard writeAll(STDOUT_FILENO, bytes) else { AgentError.fail(3, "cannot write the PID: \(String(cString: strerror(errno)))") }
        }
        for pair in environment {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            setenv(String(parts[0]), parts.count > 1 ? String(parts[1]) : "", 1)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = program.map { strdup($0) }
        argv.append(nil)
        execv(path, &argv)
        AgentError.fail(127, "cannot run \(path): \(String(cString: strerror(errno)))")
    }

    private static func waitForStartByte() {
        var byte: UInt8 = 0
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            guard count == 1, byte == 0 || byte == UInt8(ascii: "\n") else {
                AgentError.fail(2, "expected a NUL or newline byte on stdin before starting")
            }
            return
        }
    }
}
