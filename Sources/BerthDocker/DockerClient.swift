import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A Docker Engine API client on SwiftNIO: one short connection per call, HTTP upgrade for
/// exec/attach streams, engine errors surfaced with the engine's message.
public final class DockerClient: Sendable {
    /// The newest API version Berth was tested with; older engines are spoken to in theirs.
    static let maximumAPIVersion = (1, 47)

    private let endpoint: DockerEndpoint
    private let timeout: TimeAmount
    private let group: EventLoopGroup
    private let logger: Logger
    private let version = NIOLockedValueBox<String?>(nil)

    public init(endpoint: DockerEndpoint, requestTimeout: Duration = .seconds(60), logger: Logger) {
        self.endpoint = endpoint
        self.timeout = .nanoseconds(Int64(requestTimeout.components.seconds) * 1_000_000_000 + requestTimeout.components.attoseconds / 1_000_000_000)
        self.group = MultiThreadedEventLoopGroup.singleton
        self.logger = logger
    }

    /// Negotiated once per client from `GET /_ping`'s `API-Version` header.
    public func apiVersion() async throws -> String {
        if let known = version.withLockedValue({ $0 }) { return known }
        let response = try await exchange(method: .GET, uri: "/_ping", body: nil, headersOut: true)
        guard response.response.status == 200 else { throw apiError(response, "ping") }
        let server = response.apiVersion ?? "1.41"
        let parts = server.split(separator: ".").compactMap { Int($0) }
        let chosen: String
        if parts.count == 2, (parts[0], parts[1]) > Self.maximumAPIVersion {
            chosen = "\(Self.maximumAPIVersion.0).\(Self.maximumAPIVersion.1)"
        } else {
            chosen = server
        }
        version.withLockedValue { $0 = chosen }
        return chosen
    }

    // MARK: Calls

    /// A JSON API call; non-2xx answers become `DockerError` with the engine's message.
    @discardableResult
    public func call(_ method: HTTPMethod, _ path: String, body: ConfigValue? = nil, what: String) async throws -> ConfigValue {
        let uri = "/v\(try await apiVersion())\(path)"
        let response: (response: DockerResponse, apiVersion: String?)
        do {
            response = try await exchange(method: method, uri: uri, body: body.map(ConfigRenderer.compactJSON), headersOut: false)
        } catch {
            BerthMetrics.backendRequest("docker", failed: true)
            throw error
        }
        // A 404 is an answer (image or container absent), not an engine failure.
        BerthMetrics.backendRequest("docker", failed: !(200..<300).contains(response.response.status) && response.response.status != 404)
        guard (200..<300).contains(response.response.status) else { throw apiError(response, what) }
        guard !response.response.body.isEmpty else { return .null }
        return (try? ConfigValue.parse(response.response.text, format: .json, source: "engine")) ?? .null
    }

    public func imageExists(_ image: String) async throws -> Bool {
        do {
            try await call(.GET, "/images/\(Self.escape(image))/json", what: "inspect image \(image)")
            return true
        } catch let error as DockerError where error.status == 404 {
            return false
        }
    }

    /// Pulls through `POST /images/create`; the progress stream ends with an error line on failure.
    public func pullImage(_ image: String, registryAuth: String?) async throws {
        let (name, tag) = Self.splitImage(image)
        var query = "fromImage=\(Self.escape(name))"
        if let tag { query += "&tag=\(Self.escape(tag))" }
        let uri = "/v\(try await apiVersion())/images/create?\(query)"
        let response = try await exchange(method: .POST, uri: uri, body: nil, headersOut: false, extraHeaders: registryAuth.map { ["X-Registry-Auth": $0] } ?? [:])
        guard (200..<300).contains(response.response.status) else { throw apiError(response, "pull \(image)") }
        for line in response.response.text.split(separator: "\n") where line.contains("\"error\"") {
            let message = (try? ConfigValue.parse(String(line), format: .json, source: "engine"))?["error"]
            if case .string(let text)? = message { throw DockerError("DOCKER_PULL_FAILED", "pulling \(image) failed: \(text)") }
        }
    }

    public func createContainer(name: String?, body: ConfigValue) async throws -> String {
        let query = name.map { "?name=\(Self.escape($0))" } ?? ""
        let reply = try await call(.POST, "/containers/create\(query)", body: body, what: "create container")
        guard case .string(let id)? = reply["Id"] else { throw DockerError("DOCKER_PROTOCOL_ERROR", "create container: no Id in the engine's answer") }
        return id
    }

    public func startContainer(_ id: String) async throws {
        try await call(.POST, "/containers/\(id)/start", what: "start container")
    }

    public func killContainer(_ id: String, signal: String) async throws {
        try await call(.POST, "/containers/\(id)/kill?signal=\(Self.escape(signal))", what: "signal container")
    }

    /// Removing a container that is already gone counts as success.
    public func removeContainer(_ id: String, force: Bool = true) async throws {
        do {
            try await call(.DELETE, "/containers/\(id)?force=\(force ? 1 : 0)&v=1", what: "remove container")
        } catch let error as DockerError where error.status == 404 {
            return
        }
    }

    /// Containers (running or not) carrying the label, with their labels.
    public func listContainers(label: String) async throws -> [(id: String, labels: [String: String])] {
        let filters = ConfigRenderer.compactJSON(.object([("label", .array([.string(label)]))]))
        let reply = try await call(.GET, "/containers/json?all=1&filters=\(Self.escape(filters))", what: "list containers")
        guard case .array(let items) = reply else { return [] }
        return items.compactMap { item in
            guard case .string(let id)? = item["Id"] else { return nil }
            var labels: [String: String] = [:]
            if case .object(let fields)? = item["Labels"] {
                for (key, value) in fields { if case .string(let text) = value { labels[key] = text } }
            }
            return (id, labels)
        }
    }

    /// A container by ID or name, or nil when there is none.
    public func inspectContainer(_ idOrName: String) async throws -> DockerContainerInfo? {
        let reply: ConfigValue
        do {
            reply = try await call(.GET, "/containers/\(Self.escape(idOrName))/json", what: "inspect container")
        } catch let error as DockerError where error.status == 404 {
            return nil
        }
        guard case .string(let id)? = reply["Id"] else { throw DockerError("DOCKER_PROTOCOL_ERROR", "inspect container: no Id in the engine's answer") }
        var labels: [String: String] = [:]
        if case .object(let fields)? = reply["Config"]?["Labels"] {
            for (key, value) in fields { if case .string(let text) = value { labels[key] = text } }
        }
        let running = reply["State"]?["Running"] == .bool(true)
        let created = reply["Created"]?.stringValue.flatMap(DockerContainerInfo.parseTime) ?? Date()
        return DockerContainerInfo(id: id, labels: labels, running: running, created: created)
    }

    /// Creates a named volume; an existing one of that name is kept as it is (the engine
    /// answers with it).
    public func createVolume(_ name: String, labels: [String: String]) async throws {
        let body = ConfigValue.object([("Name", .string(name)), ("Labels", .object(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))])
        try await call(.POST, "/volumes/create", body: body, what: "create volume")
    }

    public func volumeExists(_ name: String) async throws -> Bool {
        do {
            try await call(.GET, "/volumes/\(Self.escape(name))", what: "inspect volume")
            return true
        } catch let error as DockerError where error.status == 404 {
            return false
        }
    }

    public func waitContainer(_ id: String) async throws -> Int {
        let reply = try await call(.POST, "/containers/\(id)/wait", what: "wait for container")
        if case .int(let code)? = reply["StatusCode"] { return Int(code) }
        return 137
    }

    public func createExec(containerID: String, command: [String], environment: [String: String] = [:], tty: Bool, attachStdin: Bool = true) async throws -> String {
        let body = ConfigValue.object([
            ("AttachStdin", .bool(attachStdin)), ("AttachStdout", .bool(true)), ("AttachStderr", .bool(true)),
            ("Tty", .bool(tty)), ("Cmd", .array(command.map(ConfigValue.string))),
            ("Env", .array(environment.sorted { $0.key < $1.key }.map { .string("\($0.key)=\($0.value)") })),
        ])
        let reply = try await call(.POST, "/containers/\(containerID)/exec", body: body, what: "create exec")
        guard case .string(let id)? = reply["Id"] else { throw DockerError("DOCKER_PROTOCOL_ERROR", "create exec: no Id in the engine's answer") }
        return id
    }

    /// `consoleSize` (rows, columns) applies before the program starts (API 1.42+), so its first
    /// look at the terminal already sees the client's size.
    public func startExec(_ execID: String, tty: Bool, consoleSize: (rows: UInt32, columns: UInt32)? = nil) async throws -> DockerRawStream {
        var fields: [(key: String, value: ConfigValue)] = [("Detach", .bool(false)), ("Tty", .bool(tty))]
        if let consoleSize { fields.append(("ConsoleSize", .array([.int(Int64(consoleSize.rows)), .int(Int64(consoleSize.columns))]))) }
        let body = ConfigRenderer.compactJSON(.object(fields))
        return try await upgrade(path: "/exec/\(execID)/start", body: body, tty: tty, what: "start exec")
    }

    public func attachContainer(_ id: String, tty: Bool) async throws -> DockerRawStream {
        try await upgrade(path: "/containers/\(id)/attach?stream=1&stdin=1&stdout=1&stderr=1", body: nil, tty: tty, what: "attach")
    }

    public func resizeExec(_ execID: String, columns: UInt32, rows: UInt32) async throws {
        try await call(.POST, "/exec/\(execID)/resize?h=\(rows)&w=\(columns)", what: "resize")
    }

    public func renameContainer(_ id: String, to name: String) async throws {
        try await call(.POST, "/containers/\(id)/rename?name=\(Self.escape(name))", what: "rename container")
    }

    public func resizeContainer(_ id: String, columns: UInt32, rows: UInt32) async throws {
        try await call(.POST, "/containers/\(id)/resize?h=\(rows)&w=\(columns)", what: "resize")
    }

    public struct ExecState: Sendable {
        public let running: Bool
        public let exitCode: Int?
        public let pid: Int?
    }

    public func inspectExec(_ execID: String) async throws -> ExecState {
        let reply = try await call(.GET, "/exec/\(execID)/json", what: "inspect exec")
        var running = false
        if case .bool(let flag)? = reply["Running"] { running = flag }
        var exitCode: Int?
        if case .int(let code)? = reply["ExitCode"] { exitCode = Int(code) }
        var pid: Int?
        if case .int(let number)? = reply["Pid"] { pid = Int(number) }
        return ExecState(running: running, exitCode: exitCode, pid: pid)
    }

    // MARK: Transport

    private func exchange(method: HTTPMethod, uri: String, body: String?, headersOut: Bool, extraHeaders: [String: String] = [:]) async throws -> (
        response: DockerResponse, apiVersion: String?
    ) {
        let channel = try await endpoint.connect(group: group, timeout: timeout)
        let promise = channel.eventLoop.makePromise(of: DockerResponse.self)
        let versionBox = NIOLockedValueBox<String?>(nil)
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(DockerError("DOCKER_TIMEOUT", "the engine did not answer \(method) \(uri) in time"))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
            if headersOut { try channel.pipeline.syncOperations.addHandler(APIVersionSniffer(box: versionBox)) }
            try channel.pipeline.syncOperations.addHandler(DockerResponseCollector(promise: promise))
        }.get()
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "docker")
        headers.add(name: "Connection", value: "close")
        for (name, value) in extraHeaders { headers.add(name: name, value: value) }
        let bytes = body.map { ByteBuffer(string: $0) }
        if let bytes {
            headers.add(name: "Content-Type", value: "application/json")
            headers.add(name: "Content-Length", value: String(bytes.readableBytes))
        } else if method == .POST {
            headers.add(name: "Content-Length", value: "0")
        }
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: headers)), promise: nil)
        if let bytes { channel.write(HTTPClientRequestPart.body(.byteBuffer(bytes)), promise: nil) }
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        let response = try await promise.futureResult.get()
        return (response, versionBox.withLockedValue { $0 })
    }

    private func upgrade(path: String, body: String?, tty: Bool, what: String) async throws -> DockerRawStream {
        let uri = "/v\(try await apiVersion())\(path)"
        let channel = try await endpoint.connect(group: group, timeout: timeout)
        let promise = channel.eventLoop.makePromise(of: DockerUpgradeResponseParser.Outcome.self)
        let output = try await channel.eventLoop.submit {
            let (feed, output) = EngineOutputFeed<DockerOutput>.make(eventLoop: channel.eventLoop)
            let handler = DockerRawStreamHandler(feed: feed, tty: tty)
            try channel.pipeline.syncOperations.addHandler(DockerUpgradeResponseParser(promise: promise, streamHandler: handler))
            return output
        }.get()
        let payload = body ?? ""
        var request = "POST \(uri) HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
        if body != nil { request += "Content-Type: application/json\r\n" }
        request += "Content-Length: \(payload.utf8.count)\r\n\r\n\(payload)"
        try await channel.writeAndFlush(ByteBuffer(string: request)).get()
        switch try await promise.futureResult.get() {
        case .upgraded:
            return DockerRawStream(channel: channel, output: output)
        case .refused(let response):
            try? await channel.close()
            throw apiError((response, nil), what)
        }
    }

    private func apiError(_ exchange: (response: DockerResponse, apiVersion: String?), _ what: String) -> DockerError {
        let response = exchange.response
        var message = response.text.trimmingCharacters(in: .whitespacesAndNewlines)
        if case .string(let text)? = (try? ConfigValue.parse(message, format: .json, source: "engine"))?["message"] { message = text }
        let code: MessageCode = response.status == 404 ? "DOCKER_NOT_FOUND" : "DOCKER_API_ERROR"
        return DockerError(code, "\(what): engine answered \(response.status): \(message)", status: response.status)
    }

    static func escape(_ text: String) -> String {
        var allowed = CharacterSet.urlQueryAllowed
        allowed.remove(charactersIn: "&=+?#/")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }

    /// `repo/name:tag` → (`repo/name`, `tag`); a digest or a missing tag leaves the tag nil.
    static func splitImage(_ image: String) -> (String, String?) {
        if image.contains("@") { return (image, nil) }
        guard let colon = image.lastIndex(of: ":"), !image[colon...].contains("/") else { return (image, "latest") }
        return (String(image[..<colon]), String(image[image.index(after: colon)...]))
    }
}

/// Keeps the `API-Version` header of a `_ping` answer.
private final class APIVersionSniffer: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias InboundOut = HTTPClientResponsePart
    let box: NIOLockedValueBox<String?>

    init(box: NIOLockedValueBox<String?>) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head(let head) = unwrapInboundIn(data), let version = head.headers.first(name: "API-Version") {
            box.withLockedValue { $0 = version }
        }
        context.fireChannelRead(data)
    }
}
