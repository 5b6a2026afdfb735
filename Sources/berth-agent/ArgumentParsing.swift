#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A bad command line: the mode prints the message and the usage on stderr and exits 1.
struct UsageError: Error {
    let message: String
    init(_ message: String) { self.message = message }
}

/// Walks a mode's arguments (everything after the mode name) option by option.
struct ArgumentCursor {
    private let arguments: [String]
    private var index = 0

    init(_ arguments: [String]) { self.arguments = arguments }

    /// The next argument, consumed.
    mutating func next() -> String? {
        guard index < arguments.count else { return nil }
        defer { index += 1 }
        return arguments[index]
    }

    /// The value that must follow `option`, consumed.
    mutating func value(of option: String) throws(UsageError) -> String {
        guard let value = next() else { throw UsageError("\(option) needs a value") }
        return value
    }

    /// Everything not consumed yet.
    mutating func rest() -> [String] {
        defer { index = arguments.count }
        return Array(arguments[index...])
    }
}

/// Signal names as SSH sends them (RFC 4254 §6.9, without "SIG"); "SIG"-prefixed spellings are
/// accepted too.
enum SignalNames {
    static let numbers: [String: Int32] = [
        "ABRT": SIGABRT, "ALRM": SIGALRM, "FPE": SIGFPE, "HUP": SIGHUP, "ILL": SIGILL, "INT": SIGINT,
        "KILL": SIGKILL, "PIPE": SIGPIPE, "QUIT": SIGQUIT, "SEGV": SIGSEGV, "TERM": SIGTERM,
        "USR1": SIGUSR1, "USR2": SIGUSR2,
    ]

    static func number(_ name: String) throws(UsageError) -> Int32 {
        let bare = name.hasPrefix("SIG") ? String(name.dropFirst(3)) : name
        guard let number = numbers[bare] else { throw UsageError("unknown signal \(name)") }
        return number
    }
}

/// Parses with `parse`, or reports the usage error and exits 1.
func parseOrExit<Options>(_ parse: () throws(UsageError) -> Options) -> Options {
    do {
        return try parse()
    } catch {
        AgentError.fail(1, error.message, usage: true)
    }
}
