import Metrics

/// The metrics (docs/configuration.md, "metrics and health"), through swift-metrics so any backend can collect them; Berth
/// exports them with swift-prometheus.
public enum BerthMetrics {
    public static func connectionOpened() {
        Counter(label: "berth_connections_total").increment()
        Meter(label: "berth_connections_current").increment()
    }

    public static func connectionClosed() { Meter(label: "berth_connections_current").decrement() }
    public static func handshake(successful: Bool) {
        Counter(label: successful ? "berth_handshake_successful_total" : "berth_handshake_failed_total").increment()
    }

    public static func authAttempt(method: String, outcome: String) {
        Counter(label: "berth_auth_requests_total", dimensions: [("method", method)]).increment()
        Counter(
            label: outcome == "success" ? "berth_auth_success_total" : "berth_auth_failures_total",
            dimensions: [("method", method), ("outcome", outcome)]
        ).increment()
    }

    /// One HTTP attempt to a webhook (`auth` or `config`); failures carry no label explosion.
    public static func webhookRequest(_ webhook: String, failed: Bool) {
        Counter(label: "berth_webhook_requests_total", dimensions: [("webhook", webhook)]).increment()
        if failed { Counter(label: "berth_webhook_failures_total", dimensions: [("webhook", webhook)]).increment() }
    }

    public static func backendRequest(_ backend: String, failed: Bool) {
        Counter(label: "berth_backend_requests_total", dimensions: [("backend", backend)]).increment()
        if failed { Counter(label: "berth_backend_errors_total", dimensions: [("backend", backend)]).increment() }
    }

    public static func containerStarted() { Meter(label: "berth_containers_running").increment() }
    public static func containerRemoved() { Meter(label: "berth_containers_running").decrement() }
    /// Resumable sessions (docs/agent-protocol.md, "Resumable sessions").
    public static func sessionDetached() { Counter(label: "berth_sessions_detached_total").increment() }
    public static func sessionResumed() { Counter(label: "berth_sessions_resumed_total").increment() }
    /// A detached session not resumed within `persistence.resumeWindow` (as this server saw it).
    public static func sessionExpired() { Counter(label: "berth_sessions_expired_total").increment() }
    public static func poolTaken() { Counter(label: "berth_pool_containers_taken_total").increment() }

    public static func sessionEnded(after duration: Duration) {
        Timer(label: "berth_session_duration_seconds").recordNanoseconds(
            duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }

    /// Login protection (`auth.protection`): a failure answered late, an address or username
    /// that reached its threshold, and a connection or password attempt refused while blocked.
    public static func loginDelayed() { Counter(label: "berth_login_protection_delays_total").increment() }
    public static func loginBlocked(kind: String) {
        Counter(label: "berth_login_protection_blocks_total", dimensions: [("kind", kind)]).increment()
    }
    public static func loginRefused(kind: String) {
        Counter(label: "berth_login_protection_refusals_total", dimensions: [("kind", kind)]).increment()
    }

    /// A connection closed at once because too few descriptors were left (`ssh.descriptorReserve`).
    public static func descriptorReserveRefusal() { Counter(label: "berth_descriptor_reserve_refusals_total").increment() }

    public static func bytesIn(_ count: Int) { Counter(label: "berth_bytes_in_total").increment(by: count) }
    public static func bytesOut(_ count: Int) { Counter(label: "berth_bytes_out_total").increment(by: count) }
}
