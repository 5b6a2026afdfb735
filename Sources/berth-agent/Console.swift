#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `console`: prepare, then replace this process with the user's program, so the PID reported
/// with --pid is the program's own PID and signals sent to it reach the program.
///
/// Order: the PID is written first, then (with --wait) the start byte is read. Berth's Docker
/// backend relies on this: it reads the PID, sizes the terminal, then releases the program with
/// a newline. On a terminal, echo is off from before the PID is written until the byte has been
/// read, so the start byte never shows up in the program's output. Output settings are left
/// alone: on a terminal the PID bytes go through ONLCR (0x0A → CR LF) like any output, and
/// Berth's PIDPrefixDecoder undoes exactly that.
enum Console {
    struct Options {
        var environment: [(name: String, value: String)] = []
        var wait = false
        var reportPID = false
        var user: String?
        var program: [String] = []

        static func parse(_ arguments: [String]) throws(UsageError) -> Options {
            var options = Options()
            var cursor = ArgumentCursor(arguments)
            while true {
                guard let argument = cursor.next() else { throw UsageError("console needs -- PROGRAM [ARGS...]") }
                switch argument {
                case "--":
                    options.program = cursor.rest()
                    guard let path = options.program.first, !path.isEmpty else { throw UsageError("console needs a PROGRAM after --") }
                    return options
                case "--env":
                    let pair = try cursor.value(of: "--env")
                    guard !pair.hasPrefix("--"), let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                        throw UsageError("--env needs NAME=VALUE, got \(pair)")
                    }
                    options.environment.append((String(pair[..<equals]), String(pair[pair.index(after: equals)...])))
                case "--wait": options.wait = true
                case "--pid": options.reportPID = true
                case "--user": options.user = try cursor.value(of: "--user")
                default: throw UsageError("unknown console option \(argument)")
                }
            }
        }
    }

    static func run(_ arguments: [String]) -> Never {
        let options = parseOrExit { () throws(UsageError) in try Options.parse(arguments) }
        if let user = options.user { become(user) }
        let terminal = options.wait ? EchoOff() : nil
        if options.reportPID { writePID() }
        if options.wait {
            let ok = readStartByte()
            terminal?.restore()
            if !ok { AgentError.fail(2, "expected a NUL or newline byte on stdin before starting") }
        }
        exec(options.program, adding: options.environment)
    }

    /// Drops to account `name` for good: its groups, gid, uid (in that order, while still
    /// allowed), then its home as the working directory (`/` when that is missing, as sshd does).
    private static func become(_ name: String) {
        guard let entry = getpwnam(name) else { AgentError.fail(126, "no account \(name) in the container") }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        let home = String(cString: entry.pointee.pw_dir)
        guard initgroups(name, gid) == 0 else { AgentError.fail(126, "cannot set the groups of \(name): \(AgentError.reason)") }
        guard setgid(gid) == 0, setuid(uid) == 0, getuid() == uid, geteuid() == uid else {
            AgentError.fail(126, "cannot change to user \(name): \(AgentError.reason)")
        }
        if uid != 0 && setuid(0) == 0 { AgentError.fail(126, "could regain root after changing to \(name)") }
        if chdir(home) != 0 { _ = chdir("/") }
    }

    /// Writes getpid() as 4 bytes little-endian. A closed stdout is exit 3, not death by SIGPIPE.
    private static func writePID() {
        let pid = UInt32(bitPattern: getpid())
        let bytes = [
            UInt8(truncatingIfNeeded: pid), UInt8(truncatingIfNeeded: pid >> 8),
            UInt8(truncatingIfNeeded: pid >> 16), UInt8(truncatingIfNeeded: pid >> 24),
        ]
        let previous = signal(SIGPIPE, SIG_IGN)
        let written = writeAll(STDOUT_FILENO, bytes)
        let failure = AgentError.reason
        signal(SIGPIPE, previous)  // ignored dispositions survive execve; leave the program's as found
        if !written { AgentError.fail(3, "cannot write the PID: \(failure)") }
    }

    /// Reads exactly one byte; true when it is NUL or newline.
    private static func readStartByte() -> Bool {
        var byte: UInt8 = 0xFF
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count < 0 && errno == EINTR { continue }
            return count == 1 && (byte == 0 || byte == UInt8(ascii: "\n"))
        }
    }

    /// execve with the inherited environment, where the `--env` pairs replace same-named
    /// variables and add new ones. No PATH search: PROGRAM is used as given.
    private static func exec(_ program: [String], adding extra: [(name: String, value: String)]) -> Never {
        let overridden = Set(extra.map(\.name))
        var entries: [String] = []
        let environment: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ  // NULL after clearenv()
        if let inherited = environment {
            var index = 0
            while let entry = inherited[index] {
                let text = String(cString: entry)
                let name = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? text
                if !overridden.contains(name) { entries.append(text) }
                index += 1
            }
        }
        // The last --env for a name wins.
        var seen = Set<String>()
        for (name, value) in extra.reversed() where seen.insert(name).inserted {
            entries.append("\(name)=\(value)")
        }
        var argv: [UnsafeMutablePointer<CChar>?] = program.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = entries.map { strdup($0) } + [nil]
        execve(program[0], &argv, &envp)
        AgentError.fail(127, "cannot run \(program[0]): \(AgentError.reason)")
    }
}

/// Turns terminal echo off on stdin (when it is a terminal) until `restore()`.
private struct EchoOff {
    private let saved: termios

    init?() {
        guard isatty(STDIN_FILENO) == 1 else { return nil }
        var settings = termios()
        guard tcgetattr(STDIN_FILENO, &settings) == 0 else { return nil }
        saved = settings
        settings.c_lflag &= ~tcflag_t(ECHO | ECHONL)
        tcsetattr(STDIN_FILENO, TCSANOW, &settings)
    }

    func restore() {
        var settings = saved
        tcsetattr(STDIN_FILENO, TCSANOW, &settings)
    }
}
