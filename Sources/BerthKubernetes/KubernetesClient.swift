import AsyncHTTPClient
import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOCore
import NIOHTTP1

/// The core/v1 pod calls Berth makes, over AsyncHTTPClient. Every call counts as a backend
/// request in the metrics; failures carry the API server's Status message.
final class KubernetesClient: Sendable {
    let endpoint: KubernetesEndpoint
    private let http: HTTPClient
    private let timeout: Duration

    init(endpoint: KubernetesEndpoint, timeout: Duration) {
        self.endpoint = endpoint
        self.timeout = timeout
        var configuration = HTTPClient.Configuration()
        if let tls = endpoint.tls { configuration.tlsConfiguration = tls }
        configuration.dnsOverride = endpoint.dnsOverride
        configuration.timeout = .init(connect: .seconds(10))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    func shutdown() async { try? await http.shutdown() }

    struct Pod: Sendable {
        let value: ConfigValue
        var name: String { value["metadata"]?["name"]?.stringValue ?? "" }
        var phase: String { value["status"]?["phase"]?.stringValue ?? "" }
        var podIP: String { value["status"]?["podIP"]?.stringValue ?? "" }
        var resourceVersion: String { value["metadata"]?["resourceVersion"]?.stringValue ?? "" }
        var isReady: Bool {
            guard case .array(let conditions)? = value["status"]?["conditions"] else { return false }
            return conditions.contains { $0["type"] == .string("Ready") && $0["status"] == .string("True") }
        }
        /// A container that cannot start without someone fixing the pod spec or the image.
        var startProblem: String? {
            guard case .array(let statuses)? = value["status"]?["containerStatuses"] else { return nil }
            for status in statuses {
                guard case .string(let reason)? = status["state"]?["waiting"]?["reason"], Self.hopeless.contains(reason) else { continue }
                let message = status["state"]?["waiting"]?["message"]?.stringValue ?? ""
                return message.isEmpty ? reason : "\(reason): \(message)"
            }
            return nil
        }

        static let hopeless: Set<String> = ["ErrImageNeverPull", "InvalidImageName", "ImagePullBackOff", "CreateContainerConfigError", "CreateContainerError"]

        func exitCode(container: Int) -> Int? {
            guard case .array(let statuses)? = value["status"]?["containerStatuses"], container < statuses.count,
                case .int(let code)? = statuses[container]["state"]?["terminated"]?["exitCode"]
            else { return nil }
            return Int(code)
        }
    }

    func createPod(namespace: String, body: ConfigValue) async throws -> Pod {
        Pod(value: try await call(.POST, "/api/v1/namespaces/\(namespace)/pods", body: ConfigRenderer.compactJSON(body)))
    }

    func getPod(namespace: String, name: String) async throws -> Pod? {
        do {
            return Pod(value: try await call(.GET, "/api/v1/namespaces/\(namespace)/pods/\(name)"))
        } catch let error as KubernetesAPIError where error.status == 404 {
            return nil
        }
    }

    /// Sets labels of a pod, only if it is still at `resourceVersion`: a
    /// JSON merge patch whose resourceVersion the API server checks (409 Conflict when the pod
    /// changed in between).
    func relabelPod(namespace: String, name: String, resourceVersion: String, labels: [(String, String)]) async throws -> Pod {
        let patch = ConfigValue.object([
            (
                "metadata",
                .object([
                    ("resourceVersion", .string(resourceVersion)), ("labels", .object(labels.map { ($0.0, .string($0.1)) })),
                ])
            )
        ])
        return Pod(
            value: try await call(
                .PATCH, "/api/v1/namespaces/\(namespace)/pods/\(name)", body: ConfigRenderer.compactJSON(patch), contentType: "application/merge-patch+json"))
    }

    /// Deleting a pod that is already gone succeeds.
    func deletePod(namespace: String, name: String) async throws {
        do {
            _ = try await call(.DELETE, "/api/v1/namespaces/\(namespace)/pods/\(name)", body: #"{"gracePeriodSeconds":0}"#)
        } catch let error as KubernetesAPIError where error.status == 404 {}
    }

    /// Deletes the pod only as it was at `resourceVersion`; false when it has changed since (409).
    func deletePod(namespace: String, name: String, resourceVersion: String) async throws -> Bool {
        let options = ConfigValue.object([
            ("gracePeriodSeconds", .int(0)), ("preconditions", .object([("resourceVersion", .string(resourceVersion))])),
        ])
        do {
            _ = try await call(.DELETE, "/api/v1/namespaces/\(namespace)/pods/\(name)", body: ConfigRenderer.compactJSON(options))
        } catch let error as KubernetesAPIError where error.status == 404 {
        } catch let error as KubernetesAPIError where error.status == 409 {
            return false
        }
        return true
    }

    func listPods(namespace: String?, labelSelector: String) async throws -> [(namespace: String, name: String, labels: ConfigValue?)] {
        let path = namespace.map { "/api/v1/namespaces/\($0)/pods" } ?? "/api/v1/pods"
        let list = try await call(.GET, path + "?labelSelector=\(Self.encode(labelSelector))")
        guard case .array(let items)? = list["items"] else { return [] }
        return items.compactMap { item in
            guard case .string(let name)? = item["metadata"]?["name"], case .string(let ns)? = item["metadata"]?["namespace"] else { return nil }
            return (ns, name, item["metadata"]?["labels"])
        }
    }

    /// Watches the pod until it runs and is ready; a pod that ends or vanishes first is an error.
    func waitUntilReady(namespace: String, name: String, limit: Duration) async throws -> Pod {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            guard let pod = try await getPod(namespace: namespace, name: name) else {
                throw KubernetesError("KUBERNETES_POD_GONE", "pod \(namespace)/\(name) was deleted while starting")
            }
            if pod.phase == "Running" && pod.isReady { return pod }
            if let problem = pod.startProblem {
                throw KubernetesError("KUBERNETES_POD_START_FAILED", "pod \(namespace)/\(name) cannot start: \(problem)")
            }
            if pod.phase == "Succeeded" || pod.phase == "Failed" {
                throw KubernetesError("KUBERNETES_POD_ENDED", "pod \(namespace)/\(name) ended (\(pod.phase)) before it was ready")
            }
            let seconds = max(1, Int((deadline - ContinuousClock.now).components.seconds))
            try await watchOnce(namespace: namespace, name: name, after: pod.resourceVersion, seconds: min(seconds, 30))
        }
        throw KubernetesError("KUBERNETES_POD_START_TIMEOUT", "pod \(namespace)/\(name) was not ready within \(limit)")
    }

    /// One watch request: returns at the first change of the pod after the version the caller
    /// read (the caller re-reads it). Without the version the API server starts with the pod as
    /// it is, and waiting would become polling as fast as the server answers.
    private func watchOnce(namespace: String, name: String, after version: String, seconds: Int) async throws {
        var path = "/api/v1/namespaces/\(namespace)/pods?watch=true&fieldSelector=\(Self.encode("metadata.name=\(name)"))&timeoutSeconds=\(seconds)"
        if !version.isEmpty { path += "&resourceVersion=\(Self.encode(version))" }
        var request = makeRequest(.GET, path)
        request.headers.add(name: "Accept", value: "application/json")
        let response = try await http.execute(request, timeout: .seconds(Int64(seconds) + 5))
        BerthMetrics.backendRequest("kubernetes", failed: response.status.code != 200)
        guard response.status.code == 200 else {
            throw KubernetesAPIError(status: Int(response.status.code), message: String(buffer: try await response.body.collect(upTo: 1 << 16)))
        }
        var events = 0
        for try await chunk in response.body {
            events += chunk.readableBytesView.filter { $0 == UInt8(ascii: "\n") }.count
            if events > 0 { return }
        }
    }

    func makeRequest(_ method: HTTPMethod, _ path: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: endpoint.baseURL + path)
        request.method = method
        request.headers.add(name: "User-Agent", value: "Berth")
        let token = endpoint.currentToken()
        if !token.isEmpty { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        return request
    }

    func call(_ method: HTTPMethod, _ path: String, body: String? = nil, contentType: String = "application/json") async throws -> ConfigValue {
        var request = makeRequest(method, path)
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(string: body))
        }
        let text: String
        let status: Int
        do {
            let response = try await http.execute(request, timeout: .init(timeout))
            status = Int(response.status.code)
            text = String(buffer: try await response.body.collect(upTo: 8 << 20))
        } catch {
            BerthMetrics.backendRequest("kubernetes", failed: true)
            throw KubernetesError("KUBERNETES_API_UNREACHABLE", "\(method.rawValue) \(path): \(error)")
        }
        BerthMetrics.backendRequest("kubernetes", failed: !(200..<300).contains(status) && status != 404)
        guard (200..<300).contains(status) else {
            let message = (try? ConfigValue.parse(text, format: .json, source: "API answer"))?["message"]?.stringValue
            throw KubernetesAPIError(status: status, message: message ?? String(text.prefix(300)))
        }
        return try ConfigValue.parse(text, format: .json, source: "API answer")
    }

    static func encode(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
    }
}

struct KubernetesAPIError: CodedError {
    let status: Int
    let reason: String
    var code: MessageCode { "KUBERNETES_API_ERROR" }
    var message: String { "API server answered \(status): \(reason)" }

    init(status: Int, message: String) {
        self.status = status
        reason = message
    }
}
