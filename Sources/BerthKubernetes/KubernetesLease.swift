import BerthConfig
import BerthCore
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers

/// A server's proof of life on Kubernetes: a coordination.k8s.io/v1 Lease named for its identity
/// in the users' namespace, renewed every `renewEvery` while it runs. The pods of its
/// connections and sessions carry `berth.lease`; any server that finds such pods whose Lease is
/// gone or long expired removes them (their server died, whatever its name was), and never
/// touches pods whose Lease is fresh. Pods are labelled only while the Lease is held, so a
/// server that cannot hold one is never mistaken for a dead one. docs/architecture.md,
/// "Ownership and clean-up".
final class KubernetesLease: Sendable {
    static let label = "berth.lease"
    static let durationSeconds = 60
    static let renewEvery = Duration.seconds(20)
    /// Others judge expiry after twice the duration: room for clock skew and a slow API server.
    static let expiredAfter: TimeInterval = TimeInterval(2 * durationSeconds)

    let name: String
    private let identity: String
    private let namespace: String
    private let client: KubernetesClient
    private let logger: Logger
    private let state = NIOLockedValueBox<(held: Bool, renewer: Task<Void, Never>?, failing: Bool, last: ConfigValue?)>((false, nil, false, nil))

    init(identity: String, namespace: String, client: KubernetesClient, logger: Logger) {
        self.identity = identity
        self.namespace = namespace
        self.client = client
        self.logger = logger
        name = Self.name(for: identity)
    }

    /// A DNS name from any identity: a digest, as identities hold `:` and `/`.
    static func name(for identity: String) -> String {
        "berth-server-" + SHA256.hash(data: Data(identity.utf8)).prefix(10).map { String(format: "%02x", $0) }.joined()
    }

    var isHeld: Bool { state.withLockedValue { $0.held } }

    private var path: String { "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases" }

    /// Takes the Lease (creating it, or renewing one left by an earlier run of this identity)
    /// and keeps renewing it; `sweep` runs after each renewal of the period's third.
    func acquire(sweep: @escaping @Sendable () async -> Void) async {
        let held = await renew()
        state.withLockedValue { $0.held = held }
        if held {
            logger.log(.info, "KUBERNETES_LEASE_HELD", "this server's lease proves it alive to other servers", ["lease": "\(namespace)/\(name)"])
        }
        let renewer = Task { [weak self] in
            var round = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: Self.renewEvery)
                guard let self, !Task.isCancelled else { return }
                let renewed = await self.renew()
                self.state.withLockedValue { $0.held = $0.held || renewed }
                round += 1
                if round % 3 == 0 { await sweep() }
            }
        }
        state.withLockedValue { $0.renewer = renewer }
    }

    /// On a graceful stop: others need not wait for the Lease to expire.
    func release() async {
        let renewer = state.withLockedValue { state -> Task<Void, Never>? in
            defer { state.renewer = nil }
            return state.renewer
        }
        renewer?.cancel()
        await renewer?.value
        guard isHeld else { return }
        _ = try? await client.call(.DELETE, "\(path)/\(name)")
    }

    private func body(resourceVersion: String?, acquired: String?) -> String {
        let now = Self.microTime(Date())
        var metadata: [(key: String, value: ConfigValue)] = [
            ("name", .string(name)), ("labels", .object([(ServerIdentity.label, .string(KubernetesPodSpec.labelValue(identity)))])),
        ]
        if let resourceVersion { metadata.append(("resourceVersion", .string(resourceVersion))) }
        return ConfigRenderer.compactJSON(
            .object([
                ("apiVersion", .string("coordination.k8s.io/v1")), ("kind", .string("Lease")), ("metadata", .object(metadata)),
                (
                    "spec",
                    .object([
                        ("holderIdentity", .string(identity)), ("leaseDurationSeconds", .int(Int64(Self.durationSeconds))),
                        ("acquireTime", .string(acquired ?? now)), ("renewTime", .string(now)),
                    ])
                ),
            ]))
    }

    /// True when the Lease is ours and fresh. A failure is logged once per run of failures.
    private func renew() async -> Bool {
        do {
            // The answer to the last write is the current object: renewing needs no GET unless
            // someone else wrote in between (409) or it is gone (404).
            func replace(_ current: ConfigValue) async throws -> ConfigValue {
                try await client.call(
                    .PUT, "\(path)/\(name)",
                    body: body(resourceVersion: current["metadata"]?["resourceVersion"]?.stringValue, acquired: current["spec"]?["acquireTime"]?.stringValue))
            }
            let written: ConfigValue
            do {
                if let known = state.withLockedValue({ $0.last }) {
                    do {
                        written = try await replace(known)
                    } catch let error as KubernetesAPIError where error.status == 409 {
                        written = try await replace(try await client.call(.GET, "\(path)/\(name)"))
                    }
                } else {
                    written = try await replace(try await client.call(.GET, "\(path)/\(name)"))
                }
            } catch let error as KubernetesAPIError where error.status == 404 {
                written = try await client.call(.POST, path, body: body(resourceVersion: nil, acquired: nil))
            }
            state.withLockedValue { $0.last = written }
            if state.withLockedValue({ $0.failing }) {
                logger.log(.notice, "KUBERNETES_LEASE_HELD", "the lease is renewed again", ["lease": "\(namespace)/\(name)"])
            }
            state.withLockedValue { $0.failing = false }
            return true
        } catch {
            let first = state.withLockedValue { state -> Bool in
                defer {
                    state.failing = true
                    state.last = nil
                }
                return !state.failing
            }
            if first {
                logger.log(
                    .warning, "KUBERNETES_LEASE_FAILED",
                    "cannot hold this server's lease (RBAC needs create, get, update, delete on leases.coordination.k8s.io): \(error)",
                    ["lease": "\(namespace)/\(name)"])
            }
            return false
        }
    }

    /// Whether the Lease `name` shows a live server: missing or renewed longer ago than
    /// `expiredAfter` means dead. A Lease that cannot be read counts as alive.
    static func isAlive(_ lease: ConfigValue?, now: Date = Date()) -> Bool {
        guard let lease else { return false }
        guard let text = lease["spec"]?["renewTime"]?.stringValue, let renewed = parseMicroTime(text) else { return true }
        return now.timeIntervalSince(renewed) < expiredAfter
    }

    static func microTime(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"
        return formatter.string(from: date)
    }

    static func parseMicroTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        // Six fractional digits are more than ISO8601DateFormatter reads: drop the last three.
        if let dot = text.firstIndex(of: "."), let end = text.firstIndex(where: { $0 == "Z" || $0 == "+" }), text.distance(from: dot, to: end) > 4 {
            return formatter.date(from: String(text[..<text.index(dot, offsetBy: 4)]) + String(text[end...]))
        }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
