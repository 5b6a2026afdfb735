import BerthConfig
import Foundation
import Logging

/// swift-log handler writing Berth's `text` or `ljson` lines (docs/configuration.md, "log", "metrics and health"). The message code and
/// the connection's identity are lifted out of the metadata into fixed fields.
public struct BerthLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    private let format: LogFormat
    private let sink: LogSink
    private let label: String

    public init(label: String, level: LogLevel, format: LogFormat, sink: LogSink) {
        self.label = label
        self.logLevel = Self.swiftLogLevel(level)
        self.format = format
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        var details = metadata.merging(event.metadata ?? [:]) { _, new in new }
        let code = details.removeValue(forKey: "code").map { "\($0)" } ?? "BERTH_LOG"
        if sink.isSyslog {
            // Syslog carries time and severity itself, so the body is the rest of an ljson line.
            let body = LogLineFormat.json(level: nil, code: code, message: "\(message)", details: details)
            sink.writeSyslog(severity: Self.syslogSeverity(level), code: code, line: body)
            return
        }
        let line: String
        switch format {
        case .ljson:
            line = LogLineFormat.json(level: Self.levelName(level), code: code, message: "\(message)", details: details)
        case .text:
            line = LogLineFormat.text(level: Self.levelName(level), code: code, message: "\(message)", details: details)
        }
        sink.write(line: line)
    }

    static func swiftLogLevel(_ level: LogLevel) -> Logger.Level {
        switch level {
        case .debug: return .debug
        case .info: return .info
        case .notice: return .notice
        case .warning: return .warning
        case .error: return .error
        case .critical, .alert, .emergency: return .critical
        }
    }

    static func syslogSeverity(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    static func levelName(_ level: Logger.Level) -> String {
        switch level {
        case .trace, .debug: return "debug"
        case .info: return "info"
        case .notice: return "notice"
        case .warning: return "warning"
        case .error: return "error"
        case .critical: return "critical"
        }
    }
}
