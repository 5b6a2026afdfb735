#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `signal --pid N --signal NAME`: how Berth delivers SSH `signal` requests to programs running
/// in a connection's container.
enum SignalMode {
    struct Options {
        var pid: Int32
        var signal: Int32

        static func parse(_ arguments: [String]) throws(UsageError) -> Options {
            var pid: Int32?
            var signal: Int32?
            var cursor = ArgumentCursor(arguments)
            while let option = cursor.next() {
                switch option {
                case "--pid":
                    let value = try cursor.value(of: option)
                    guard pid == nil else { throw UsageError("--pid given twice") }
                    guard let number = Int32(value), number > 0 else { throw UsageError("invalid PID \(value)") }
                    pid = number
                case "--signal":
                    let value = try cursor.value(of: option)
                    guard signal == nil else { throw UsageError("--signal given twice") }
                    signal = try SignalNames.number(value)
                default:
                    throw UsageError("unknown signal option \(option)")
                }
            }
            guard let pid, let signal else { throw UsageError("signal needs --pid and --signal") }
            return Options(pid: pid, signal: signal)
        }
    }

    static func run(_ arguments: [String]) -> Never {
        let options = parseOrExit { () throws(UsageError) in try Options.parse(arguments) }
        if kill(options.pid, options.signal) == 0 { exit(0) }
        if errno == ESRCH { AgentError.fail(2, "no such process \(options.pid)") }
        AgentError.fail(3, "cannot signal \(options.pid): \(AgentError.reason)")
    }
}
