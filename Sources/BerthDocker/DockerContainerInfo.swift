import Foundation

/// What Berth reads back about a container: how a restarted Berth finds a user's persistent
/// container and its age.
public struct DockerContainerInfo: Sendable {
    public let id: String
    public let labels: [String: String]
    public let running: Bool
    /// From the engine, so a container's age survives Berth restarts.
    public let created: Date

    /// The engine's RFC 3339 time (`2026-12-04T21:38:40.123456789Z`), to the second.
    static func parseTime(_ text: String) -> Date? {
        guard text.utf8.count >= 19 else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        var head = String(text.prefix(19))
        let rest = text.dropFirst(19).drop { $0 == "." || $0.isNumber }
        head += rest.isEmpty ? "Z" : String(rest)
        return formatter.date(from: head)
    }
}
