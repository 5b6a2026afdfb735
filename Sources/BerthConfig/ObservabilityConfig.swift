/// `metrics` (docs/configuration.md, "log", "metrics and health"): a Prometheus text endpoint.
public struct MetricsConfig: Sendable, Hashable {
    public var enable = false
    /// Loopback, unlike ContainerSSH's `0.0.0.0:9100`: metrics name no secrets but tell anyone
    /// who can reach them how busy the server is; exposing them is the operator's choice.
    public var listen = "127.0.0.1:9100"
    public var path = "/metrics"

    public init() {}
}

/// `health` (docs/configuration.md, "log", "metrics and health"): 200 `ok` while serving, 503 otherwise.
public struct HealthConfig: Sendable, Hashable {
    public var enable = false
    /// Loopback, as for metrics; `berth healthcheck` and Docker's HEALTHCHECK reach it there.
    public var listen = "127.0.0.1:7000"

    public init() {}
}

enum ObservabilitySectionReader {
    static func metrics(_ reader: inout ObjectReader) -> MetricsConfig {
        var metrics = MetricsConfig()
        metrics.enable = reader.bool("enable", metrics.enable)
        metrics.listen = reader.string("listen", metrics.listen)
        if let problem = ListenAddress.problem(metrics.listen) { reader.issues.add(reader.keyPath("listen"), problem) }
        metrics.path = reader.string("path", metrics.path)
        if !metrics.path.hasPrefix("/") { reader.issues.add(reader.keyPath("path"), "must start with /") }
        reader.finish()
        return metrics
    }

    static func health(_ reader: inout ObjectReader) -> HealthConfig {
        var health = HealthConfig()
        health.enable = reader.bool("enable", health.enable)
        health.listen = reader.string("listen", health.listen)
        if let problem = ListenAddress.problem(health.listen) { reader.issues.add(reader.keyPath("listen"), problem) }
        // ContainerSSH's health client settings are accepted; `berth healthcheck` derives its URL.
        _ = reader.value("client")
        reader.finish()
        return health
    }
}
