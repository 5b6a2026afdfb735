#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum Usage {
    static let text = """
    Usage: containerssh-agent MODE [OPTIONS]

    Modes:
      console [--env NAME=VALUE]... [--wait] [--pid] -- PROGRAM [ARGS...]
          Run PROGRAM (no PATH search) with extra environment variables. --wait reads one NUL
          or newline byte from stdin first; --pid writes this process's PID as 4 bytes
          (little-endian) to stdout before running PROGRAM.
      signal --pid PID --signal NAME
          Send a signal (ABRT ALRM FPE HUP ILL INT KILL PIPE QUIT SEGV TERM USR1 USR2).
      wait-signal --signal NAME [--signal NAME]... [--message TEXT]
          Wait for one of the signals, print TEXT, exit 0. Reaps orphaned children as PID 1.
      write-file PATH
          Copy stdin to PATH (created or truncated, mode 0600).

    Exit codes: 0 success, 1 bad arguments, 2 wait byte wrong or missing / no such process,
    3 PID write failed / signal failed, 127 exec failed.

    """

    static func print(to fd: Int32) {
        _ = writeAll(fd, Array(text.utf8))
    }
}

enum AgentError {
    static func fail(_ code: Int32, _ message: String, usage: Bool = false) -> Never {
        _ = writeAll(STDERR_FILENO, Array("containerssh-agent: \(message)\n".utf8))
        if usage { Usage.print(to: STDERR_FILENO) }
        exit(code)
    }
}

enum Signals {
    static let byName: [String: Int32] = [
        "ABRT": SIGABRT, "ALRM": SIGALRM, "FPE": SIGFPE, "HUP": SIGHUP, "ILL": SIGILL, "INT": SIGINT,
        "KILL": SIGKILL, "PIPE": SIGPIPE, "QUIT": SIGQUIT, "SEGV": SIGSEGV, "TERM": SIGTERM,
        "USR1": SIGUSR1, "USR2": SIGUSR2,
    ]

    static func number(_ name: String) -> Int32? {
        byName[name.hasPrefix("SIG") ? String(name.dropFirst(3)) : name]
    }
}

/// Writes all bytes, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            return false
        }
        offset += written
    }
    return true
}
