import Logging

extension Logger {
    /// Logs a message with its stable message code (docs/configuration.md, "log", "metrics and health"). Every Berth log line goes
    /// through here so that the code is never forgotten.
    public func log(
        _ level: Logger.Level,
        _ code: MessageCode,
        _ message: @autoclosure () -> String,
        _ details: Logger.Metadata = [:],
        file: String = #fileID, function: String = #function, line: UInt = #line
    ) {
        var metadata = details
        metadata[LogKey.code] = .string(code.rawValue)
        self.log(level: level, "\(message())", metadata: metadata, file: file, function: function, line: line)
    }

    /// A copy that stamps every line with the connection's ID and client address.
    public func forConnection(_ metadata: ConnectionMetadata) -> Logger {
        var copy = self
        copy[metadataKey: LogKey.connectionID] = .string(metadata.connectionID.hex)
        copy[metadataKey: LogKey.remoteAddress] = .string(metadata.remoteAddress.description)
        return copy
    }
}

/// Metadata keys with a fixed meaning in log output.
public enum LogKey {
    public static let code = "code"
    public static let connectionID = "connectionId"
    public static let remoteAddress = "remoteAddress"
    public static let username = "username"
    public static let channelID = "channelId"
    public static let reason = "reason"
}
