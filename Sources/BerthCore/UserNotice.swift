import Logging

/// The lines Berth writes to a user's terminal when something behind it fails. Engine and API
/// server messages name hosts, paths, namespaces, images and sometimes credentials of the
/// infrastructure; they go to the log, and the user gets a code and the connection ID to quote
/// to the operator, who finds the full text by that ID.
public enum UserNotice {
    public static func line(_ text: String, code: MessageCode, logger: Logger) -> String {
        var reference = code.rawValue
        if case .string(let id)? = logger[metadataKey: LogKey.connectionID] { reference += ", connection \(id)" }
        return "Berth: \(text) (\(reference))\r\n"
    }
}
