#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

enum Usage {
    static let text = """
        Usage: containerssh-agent MODE [OPTIONS]

        Modes:
          console [--env NAME=VALUE]... [--wait] [--pid] [--user NAME] -- PROGRAM [ARGS...]
              Replace this process with PROGRAM (an absolute or relative path; no PATH search),
              adding or overriding environment variables; with --user, as that account (its
              groups, gid and uid; its home as the working directory). --pid first writes this process's PID
              (which becomes PROGRAM's) as 4 bytes little-endian to stdout; --wait then reads one
              NUL or newline byte from stdin (terminal echo is off while waiting) before starting.
          signal --pid PID --signal NAME
              Send a signal: ABRT ALRM FPE HUP ILL INT KILL PIPE QUIT SEGV TERM USR1 USR2.
          wait-signal --signal NAME [--signal NAME]... [--message TEXT]
              Wait for one of the signals, print TEXT (no newline added), exit 0. Reaps orphaned children, so it can
              be the idle PID 1 of a container.
          write-file [--size N] PATH
              Copy stdin to PATH (created or truncated, mode 0600); with --size, exactly N bytes.
          forward-server
              Port forwarding for Berth: speaks the CBOR forwarding protocol on stdin/stdout,
              dialling (ssh -L) or listening (ssh -R) inside the container, tcp or unix sockets.
          serve (--socket PATH | --listen HOST:PORT | --stdio) [--signal NAME]... [--resume-dir DIR]
              Berth's data plane (docs/agent-protocol.md): programs, file writes and forwards,
              multiplexed over one link, the first connection on PATH or the TCP port that knows the
              secret given in BERTH_AGENT_SECRET (the socket is removed, the port closed then; a TCP
              peer has 10 s to prove it; --listen needs the secret), or stdin/stdout. Reaps orphans; exits
              on the signals, or when the link ends (its programs are killed; terminal programs of a
              resumable link stay detached, and the agent with them, until they end or expire).
              DIR: where agent processes find each other's detached sessions (default
              /run/berth-resume as root, else /tmp/berth-resume-UID).
          -h, --help
              Show this text.

        Exit codes: 0 success; 1 bad arguments (write-file: any error);
          console: 2 start byte wrong or missing, 3 PID write failed, 126 cannot change user,
            127 exec failed;
          signal: 2 no such process, 3 signal failed;
          forward-server: 1 cannot listen, 2 malformed protocol input;
          serve: 0 link or signal ended it, 1 cannot listen, 2 no valid hello on --stdio.

        """

    static func print(to fd: Int32) {
        _ = writeAll(fd, Array(text.utf8))
    }
}

enum AgentError {
    /// Prints `containerssh-agent: MESSAGE` (and the usage, for command line errors) on stderr
    /// and exits with `code`.
    static func fail(_ code: Int32, _ message: String, usage: Bool = false) -> Never {
        _ = writeAll(STDERR_FILENO, Array("containerssh-agent: \(message)\n".utf8))
        if usage { Usage.print(to: STDERR_FILENO) }
        exit(code)
    }

    /// The text of the current `errno`.
    static var reason: String { String(cString: strerror(errno)) }
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
