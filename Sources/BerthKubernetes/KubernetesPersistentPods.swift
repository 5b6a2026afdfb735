import BerthConfig
import BerthCore
import Foundation
import Logging

/// The `persistence` timers for persistent mode's per-user pods (never the shared pod of
/// `persistentShared`, which the operator may have made): a pod with no connection of this
/// server for `idleTimeout`, or older than `maxLifetime` (its `creationTimestamp`), is deleted.
/// Pods this server's identity created that it finds at start-up come under the timers with
/// their idle clock started then (docs/architecture.md, "Ownership and clean-up").
actor KubernetesPersistentPods {
    static let shared = KubernetesPersistentPods()

    struct Entry {
        let backend: KubernetesBackend
        var connections: Set<ObjectIdentifier> = []
        var idleSince = ContinuousClock.now
        var created: Date?
    }

    private var entries: [String: Entry] = [:]
    private var reaper: Task<Void, Never>?

    func attach(_ name: String, connection: ObjectIdentifier, backend: KubernetesBackend, created: Date?) {
        let key = "\(backend.namespace)/\(name)"
        var entry = entries[key] ?? Entry(backend: backend, created: created)
        entry.connections.insert(connection)
        if let created { entry.created = created }
        entries[key] = entry
        ensureReaper(backend.persistence)
    }

    func detach(_ connection: ObjectIdentifier) {
        for (key, var entry) in entries where entry.connections.remove(connection) != nil {
            if entry.connections.isEmpty { entry.idleSince = .now }
            entries[key] = entry
        }
    }

    func adopt(_ name: String, backend: KubernetesBackend, created: Date?) {
        let key = "\(backend.namespace)/\(name)"
        guard entries[key] == nil else { return }
        entries[key] = Entry(backend: backend, created: created)
        ensureReaper(backend.persistence)
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
        for (key, entry) in entries {
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
                try await entry.backend.client.deletePod(namespace: entry.backend.namespace, name: name)
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
