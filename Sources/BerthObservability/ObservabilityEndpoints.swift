import BerthConfig
import BerthCore
import Metrics
import NIOConcurrencyHelpers
import Prometheus

/// Whether Berth is serving; the health endpoint answers from it.
public final class HealthState: Sendable {
    private let serving = NIOLockedValueBox(false)

    public init() {}

    public var isServing: Bool { serving.withLockedValue { $0 } }
    public func set(serving value: Bool) { serving.withLockedValue { $0 = value } }
}

/// The metrics and health HTTP endpoints that the configuration asks for.
public final class ObservabilityEndpoints: Sendable {
    private let servers: [PlainHTTPServer]

    private init(servers: [PlainHTTPServer]) { self.servers = servers }

    /// Swift-metrics can be bootstrapped once per process; the registry is the exporter's.
    public static func bootstrapMetrics() -> PrometheusCollectorRegistry {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [.milliseconds(100), .seconds(1), .seconds(10), .seconds(60), .seconds(600), .seconds(3600), .seconds(36000)]
        MetricsSystem.bootstrap(factory)
        return registry
    }

    /// A further page Berth serves on its own listener (the OAuth2 redirect page).
    public struct Page: Sendable {
        public let listen: String
        public let what: String
        public let route: PlainHTTPServer.Route

        public init(listen: String, what: String, route: @escaping PlainHTTPServer.Route) {
            self.listen = listen
            self.what = what
            self.route = route
        }
    }

    public static func start(
        metrics: MetricsConfig, health: HealthConfig, registry: PrometheusCollectorRegistry?, state: HealthState, pages: [Page] = []
    ) async throws -> ObservabilityEndpoints {
        var servers: [PlainHTTPServer] = []
        do {
            for page in pages {
                servers.append(try await PlainHTTPServer.start(listen: page.listen, what: page.what, route: page.route))
            }
            if metrics.enable, let registry {
                let path = metrics.path
                servers.append(
                    try await PlainHTTPServer.start(listen: metrics.listen, what: "metrics.listen") { _, requested, _ in
                        guard requested == path else { return .init(status: .notFound, body: Array("not found\n".utf8)) }
                        return .init(status: .ok, contentType: "text/plain; version=0.0.4; charset=utf-8", body: registry.emitToBuffer())
                    })
            }
            if health.enable {
                servers.append(
                    try await PlainHTTPServer.start(listen: health.listen, what: "health.listen") { _, _, _ in
                        state.isServing ? .init(status: .ok, body: Array("ok".utf8)) : .init(status: .serviceUnavailable, body: Array("not ok".utf8))
                    })
            }
        } catch {
            for server in servers { await server.stop() }
            throw error
        }
        return ObservabilityEndpoints(servers: servers)
    }

    public func stop() async {
        for server in servers { await server.stop() }
    }
}
