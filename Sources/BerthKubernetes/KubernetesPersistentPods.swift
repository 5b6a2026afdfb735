import BerthConfig
import BerthCore
import Foundation
import Logging

/// The `persistence` timers for persistent mode's per-user pods (never the shared pod of
/// `persistentShared`, which the operator may have made): a pod this server looks after with no
/// connection of this server for `idleTimeout`, or older than `maxLifetime` (its
/// `creationTimestamp`), is deleted. Pods this server's identity created, and those it adopts
/// from a dead server (`KubernetesAdoption`), come under the timers with their idle clock
/// started then; a live server's pod that a user reaches through this server is tracked for its
/// connections only, so that adopting it later does not count it idle
/// (docs/architecture.md, "Ownership and clean-up").
actor KubernetesPersistentPods {
    static let shared = KubernetesPersistentPods()

    struct Entry {
        let backend: KubernetesBackend
        var connections: Set<ObjectIdentifier> = []
        var idleSince = ContinuousClock.now
        var created: Date?
        /// Under this server's timers (else another live server's, only tracked).
        var lookedAfter = false
    }

    private var entries: [String: Entry] = [:]
    private var reaper: Task<Void, Never>?

    func attach(_ name: String, connection: ObjectIdentifier, backend: KubernetesBackend, created: Date?, lookedAfter: Bool) {
        let key = "\(backend.namespace)/\(name)"
        var entry = entries[key] ?? Entry(backend: backend, created: created)
        entry.connections.insert(connection)
        if let created { entry.created = created }
        entry.lookedAfter = entry.lookedAfter || lookedAfter
        entries[key] = entry
        if entry.lookedAfter { ensureReaper(backend.persistence) }
    }

    func detach(_ connection: ObjectIdentifier) {
        for (key, var entry) in entries where entry.connections.remove(connection) != nil {
            if entry.connections.isEmpty { entry.idleSince = .now }
            entries[key] = entry.connections.isEmpty && !entry.lookedAfter ? nil : entry
        }
    }

    /// Puts a pod under the timers; one already under them keeps its clocks.
    func adopt(_ name: String, backend: KubernetesBackend, created: Date?) {
        let key = "\(backend.namespace)/\(name)"
        var entry = entries[key] ?? Entry(backend: backend, created: created)
        guard !entry.lookedAfter else { return }
        entry.lookedAfter = true
        entry.idleSince = .now
        if let created { entry.created = created }
        entries[key] = entry
        ensureReaper(backend.persistence)
    }

    func watches(_ name: String, backend: KubernetesBackend) -> Bool {
        entries["\(backend.namespace)/\(name)"]?.lookedAfter == true
    }

    private func ensureReaper(_ persistence: PersistenceConfig) {
        guard reaper == nil, persistence.idleTimeout > .zero || persistence.maxLifetime > .zero else { return }
        let limits = [persistence.idleTimeout, persistence.maxLifetime].filter { $0 > .zero }.map(\.duration)
        let interval = max(.milliseconds(250), min(.seconds(30), (limits.min() ?? .seconds(120)) / 4))
        reaper = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.reap()
            }
        }
    }

    private func reap() async {
        let now = ContinuousClock.now
        var due: [(key: String, entry: Entry, reason: String)] = []
        for (key, entry) in entries where entry.lookedAfter {
            let persistence = entry.backend.persistence
            if persistence.maxLifetime > .zero, let created = entry.created, Date().timeIntervalSince(created) >= persistence.maxLifetime.timeInterval {
                due.append((key, entry, "maxLifetime"))
            } else if persistence.idleTimeout > .zero, entry.connections.isEmpty, now - entry.idleSince >= persistence.idleTimeout.duration {
                due.append((key, entry, "idleTimeout"))
            }
        }
        for (key, entry, reason) in due {
            entries[key] = nil
            let name = String(key.split(separator: "/", maxSplits: 1).last ?? "")
            do {
                // A server that took this one for dead may have adopted the pod meanwhile.
                guard let current = try await entry.backend.client.getPod(namespace: entry.backend.namespace, name: name) else { continue }
                guard current.value["metadata"]?["labels"]?[ServerIdentity.label]?.stringValue == KubernetesPodSpec.serverName(entry.backend.identity) else {
                    entry.backend.logger.log(.notice, "KUBERNETES_PERSISTENT_RELEASED", "another server looks after this persistent pod now", ["pod": "\(key)"])
                    if entries[key] == nil && !entry.connections.isEmpty {
                        var tracked = entry
                        tracked.lookedAfter = false
                        entries[key] = tracked
                    }
                    continue
                }
                // A connection of this server took the pod again while it was read.
                guard entries[key] == nil else { continue }
                // Deleted only as read: an adoption in between changes its resourceVersion.
                guard let version = current.value["metadata"]?["resourceVersion"]?.stringValue,
                    try await entry.backend.client.deletePod(namespace: entry.backend.namespace, name: name, resourceVersion: version)
                else {
                    entry.backend.logger.log(.notice, "KUBERNETES_PERSISTENT_RELEASED", "another server looks after this persistent pod now", ["pod": "\(key)"])
                    continue
                }
                BerthMetrics.containerRemoved()
                entry.backend.logger.log(.notice, "KUBERNETES_PERSISTENT_REMOVED", "deleted a persistent pod (\(reason))", ["pod": "\(key)", "reason": "\(reason)"])
            } catch {
                entry.backend.logger.log(.warning, "KUBERNETES_PERSISTENT_REMOVE_FAILED", "could not delete persistent pod \(key): \(error)", ["pod": "\(key)"])
            }
        }
    }

    /// `creationTimestamp` (RFC 3339, seconds).
    static func creationTime(_ pod: ConfigValue) -> Date? {
        guard let text = pod["metadata"]?["creationTimestamp"]?.stringValue else { return nil }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: text)
    }
}
