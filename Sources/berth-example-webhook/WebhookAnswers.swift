import BerthConfig
import Foundation

/// The decisions of the example server, one function per endpoint.
struct WebhookAnswers: Sendable {
    let directory: UserDirectory
    let allowAll: Bool

    /// Returns the JSON reply for an endpoint, or nil for an unknown one (404).
    func answer(endpoint: String, request: ConfigValue) -> ConfigValue? {
        let username = request["username"]?.stringValue ?? ""
        let user = directory.users[username]
        switch endpoint {
        case "password":
            let sent = request["passwordBase64"]?.stringValue.flatMap { Data(base64Encoded: $0) }
            let matches = user?.password.map { Data($0.utf8) == sent } ?? false
            return reply(success: allowAll || matches, user: user)
        case "pubkey":
            let offered = Self.typeAndBlob(request["publicKey"]?.stringValue ?? "")
            let matches = user?.authorizedKeys?.contains { Self.typeAndBlob($0) == offered } ?? false
            return reply(success: !offered.isEmpty && matches, user: user)
        case "authz":
            return .object([("success", .bool(allowAll || user != nil))])
        case "config":
            return .object([("config", user?.config ?? .object([]))])
        default:
            return nil
        }
    }

    private func reply(success: Bool, user: ExampleUser?) -> ConfigValue {
        var body: [(key: String, value: ConfigValue)] = [("success", .bool(success))]
        guard success, let user else { return .object(body) }
        if let name = user.authenticatedUsername { body.append(("authenticatedUsername", .string(name))) }
        let sensitive = Set(user.sensitive ?? [])
        func entries(_ values: [String: String], sensitive: (String) -> Bool) -> ConfigValue {
            .object(values.map { ($0.key, .object([("value", .string($0.value)), ("sensitive", .bool(sensitive($0.key)))])) })
        }
        if let metadata = user.metadata { body.append(("metadata", entries(metadata) { sensitive.contains($0) })) }
        if let environment = user.environment { body.append(("environment", entries(environment) { sensitive.contains($0) })) }
        if let files = user.files {
            body.append(("files", entries(files.mapValues { Data($0.utf8).base64EncodedString() }) { _ in false }))
        }
        return .object(body)
    }

    private static func typeAndBlob(_ line: String) -> String {
        line.split(separator: " ").prefix(2).joined(separator: " ")
    }
}

/// Appends each request to a file as it arrives, for tests and for watching a demo.
final class RequestRecorder: @unchecked Sendable {
    private let handle: FileHandle
    private let lock = NSLock()

    init(path: String) throws {
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        handle.seekToEndOfFile()
    }

    func record(path: String, body: ConfigValue) {
        let data = Data(ConfigRenderer.compactJSON(.object([("path", .string(path)), ("body", body)]), sortedKeys: true).utf8)
        lock.lock()
        defer { lock.unlock() }
        handle.write(data + Data("\n".utf8))
        try? handle.synchronize()
    }
}
