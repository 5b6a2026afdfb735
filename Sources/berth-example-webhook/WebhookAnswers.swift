import Foundation

/// The decisions of the example server, one function per endpoint.
struct WebhookAnswers: Sendable {
    let directory: UserDirectory
    let allowAll: Bool

    /// Returns the JSON reply for an endpoint, or nil for an unknown one (404).
    func answer(endpoint: String, request: [String: Any]) -> [String: Any]? {
        let username = request["username"] as? String ?? ""
        let user = directory.users[username]
        switch endpoint {
        case "password":
            let sent = (request["passwordBase64"] as? String).flatMap { Data(base64Encoded: $0) }
            let matches = user?.password.map { Data($0.utf8) == sent } ?? false
            return reply(success: allowAll || matches, user: user)
        case "pubkey":
            let offered = Self.typeAndBlob(request["publicKey"] as? String ?? "")
            let matches = user?.authorizedKeys?.contains { Self.typeAndBlob($0) == offered } ?? false
            return reply(success: !offered.isEmpty && matches, user: user)
        case "authz":
            return ["success": allowAll || user != nil]
        case "config":
            return ["config": user?.config?.json ?? [String: Any]()]
        default:
            return nil
        }
    }

    private func reply(success: Bool, user: ExampleUser?) -> [String: Any] {
        var body: [String: Any] = ["success": success]
        guard success, let user else { return body }
        if let name = user.authenticatedUsername { body["authenticatedUsername"] = name }
        let sensitive = Set(user.sensitive ?? [])
        func entries(_ values: [String: String]) -> [String: Any] {
            Dictionary(uniqueKeysWithValues: values.map { ($0.key, ["value": $0.value, "sensitive": sensitive.contains($0.key)] as [String: Any]) })
        }
        if let metadata = user.metadata { body["metadata"] = entries(metadata) }
        if let environment = user.environment { body["environment"] = entries(environment) }
        if let files = user.files {
            body["files"] = files.mapValues { ["value": Data($0.utf8).base64EncodedString(), "sensitive": false] }
        }
        return body
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

    func record(path: String, body: Any) {
        let entry: [String: Any] = ["path": path, "body": body]
        guard let data = try? JSONSerialization.data(withJSONObject: entry, options: [.sortedKeys]) else { return }
        lock.lock()
        defer { lock.unlock() }
        handle.write(data + Data("\n".utf8))
        try? handle.synchronize()
    }
}
