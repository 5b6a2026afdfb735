import BerthConfig
import Foundation
import NIOConcurrencyHelpers

/// Where formatted log lines go. Lines from many connections are written whole, one at a time.
/// The FILE pointer is only touched while `lock` is held.
public final class LogSink: @unchecked Sendable {
    private let lock = NIOLock()
    private var handle: UnsafeMutablePointer<FILE>?
    private let path: String?
    private let syslog: SyslogTransport?

    public static let standardOutput = LogSink(stream: fdopen(STDOUT_FILENO, "w"))

    private init(stream: UnsafeMutablePointer<FILE>?) {
        self.handle = stream
        self.path = nil
        self.syslog = nil
    }

    /// Sends every line to syslog (RFC 5424) instead of a file.
    public init(syslog config: SyslogConfig) throws {
        self.handle = nil
        self.path = nil
        self.syslog = try SyslogTransport(config)
    }

    var isSyslog: Bool { syslog != nil }

    func writeSyslog(severity: Int, code: String, line: String) {
        lock.withLock { syslog?.send(severity: severity, msgid: code, message: line) }
    }

    /// The log file's mode, whatever the umask: log lines name users and addresses.
    static let fileMode: mode_t = 0o640

    /// Appends to a file, creating it (mode 0640) if needed.
    public init(appendingTo path: String) throws {
        self.handle = try Self.openFile(path)
        self.path = path
        self.syslog = nil
    }

    /// The first open and every reopen after rotation give the file the same mode; `fopen`
    /// alone would create the new file with the umask's.
    private static func openFile(_ path: String) throws -> UnsafeMutablePointer<FILE> {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, fileMode)
        guard fd >= 0 else { throw LogSinkError(path: path, reason: String(cString: strerror(errno))) }
        guard fchmod(fd, fileMode) == 0, let file = fdopen(fd, "a") else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw LogSinkError(path: path, reason: reason)
        }
        return file
    }

    public func write(line: String) {
        lock.withLock {
            guard let handle else { return }
            fputs(line, handle)
            fputc(0x0A, handle)
            fflush(handle)
        }
    }

    /// Reopens the file after log rotation moved it away.
    public func reopen() throws {
        guard let path else { return }
        try lock.withLock {
            let file = try Self.openFile(path)
            if let handle { fclose(handle) }
            handle = file
        }
    }
}

public struct LogSinkError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "LOG_FILE_OPEN_FAILED: cannot open log file \(path): \(reason)" }
}
