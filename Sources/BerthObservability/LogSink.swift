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

    /// Appends to a file, creating it (mode 0640) if needed.
    public init(appendingTo path: String) throws {
        guard let file = fopen(path, "a") else {
            throw LogSinkError(path: path, reason: String(cString: strerror(errno)))
        }
        chmod(path, 0o640)
        self.handle = file
        self.path = path
        self.syslog = nil
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
            guard let file = fopen(path, "a") else { throw LogSinkError(path: path, reason: String(cString: strerror(errno))) }
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
