#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `wait-signal`: the idle PID 1 of connection-mode containers. Blocks the awaited signals and
/// SIGCHLD and takes them with sigwait, reaping exec'd programs that end so none linger as zombies.
enum WaitSignal {
    static func run(_ arguments: [String]) -> Never {
        var awaited: [Int32] = []
        var message: String?
        var index = 0
        while index < arguments.count {
            guard index + 1 < arguments.count else { AgentError.fail(1, "\(arguments[index]) needs a value", usage: true) }
            let value = arguments[index + 1]
            switch arguments[index] {
            case "--signal":
                guard let number = Signals.number(value) else { AgentError.fail(1, "unknown signal \(value)") }
                awaited.append(number)
            case "--message":
                message = value
            default:
                AgentError.fail(1, "unknown wait-signal option \(arguments[index])", usage: true)
            }
            index += 2
        }
        guard !awaited.isEmpty else { AgentError.fail(1, "wait-signal needs at least one --signal", usage: true) }
        var set = sigset_t()
        sigemptyset(&set)
        for signal in awaited + [SIGCHLD] { sigaddset(&set, signal) }
        sigprocmask(SIG_BLOCK, &set, nil)
        while true {
            var received: Int32 = 0
            guard sigwait(&set, &received) == 0 else { continue }
            if received == SIGCHLD {
                var status: Int32 = 0
                while waitpid(-1, &status, WNOHANG) > 0 {}
                if !awaited.contains(SIGCHLD) { continue }
            }
            if let message { _ = writeAll(STDOUT_FILENO, Array((message + "\n").utf8)) }
            exit(0)
        }
    }
}
