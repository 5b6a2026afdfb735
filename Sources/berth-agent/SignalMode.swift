#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `signal --pid N --signal NAME`.
enum SignalMode {
    static func run(_ arguments: [String]) -> Never {
        var pid: Int32?
        var signal: Int32?
        var index = 0
        while index < arguments.count {
            guard index + 1 < arguments.count else { AgentError.fail(1, "\(arguments[index]) needs a value", usage: true) }
            let value = arguments[index + 1]
            switch arguments[index] {
            case "--pid":
                guard let number = Int32(value), number > 0 else { AgentError.fail(1, "invalid PID \(value)") }
                pid = number
            case "--signal":
                guard let number = Signals.number(value) else { AgentError.fail(1, "unknown signal \(value)") }
                signal = number
            default:
                AgentError.fail(1, "unknown signal option \(arguments[index])", usage: true)
            }
            index += 2
        }
        guard let pid, let signal else { AgentError.fail(1, "signal needs --pid and --signal", usage: true) }
        if kill(pid, signal) == 0 { exit(0) }
        if errno == ESRCH { AgentError.fail(2, "no such process \(pid)") }
        AgentError.fail(3, "cannot signal \(pid): \(String(cString: strerror(errno)))")
    }
}
