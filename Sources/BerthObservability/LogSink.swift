import Foundation
import NIOConcurrencyHelpers

/// Where formatted log lines go. Lines from many connections are written whole, one at a time.
public final class LogSink: Sendable {
    private let lock = NIOLock()
    private let handle: NIOLockedValueBox<UnsafeMutablePointer<FILE>?>
    private let path: String?

    public static let standardOutput = LogSink(stream: stdout)

    private init(stream: UnsafeMutablePointer<FILE>?) {
        self.handle = NIOLockedValueBox(stream)
        self.path = nil
    }

    /// Appends to a file, creating it (mode 0640) if needed.
    public init(appendingTo path: String) throws {
        guard let file = fopen(path, "a") else {
            throw LogSinkError(path: path, reason: String(cString: strerror(errno)))
        }
        chmod(path, 0o640)
        self.handle = NIOLockedValueBox(file)
        self.path = path
    }

    public func write(line: String) {
        lock.withLock {
            handle.withLockedValue { file in
                guard let file else { return }
                fputs(line, file)
                fputc(0x0A, file)
                fflush(file)
            }
        }
    }

    /// Reopens the file after log rotation moved it away.
    public func reopen() throws {
        guard let path else { return }
        try lock.withLock {
            guard let file = fopen(path, "a") else { throw LogSinkError(path: path, reason: String(cString: strerror(errno))) }
            handle.withLockedValue { old in
                if let old { fclose(old) }
                old = file
            }
        }
    }
}

extension LogSink: @unchecked Sendable {}

public struct LogSinkError: Error, CustomStringConvertible {
    public let path: String
    public let reason: String
    public var description: String { "LOG_FILE_OPEN_FAILED: cannot open log file \(path): \(reason)" }
}
