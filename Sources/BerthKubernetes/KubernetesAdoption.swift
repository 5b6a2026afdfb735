import BerthConfig
import BerthCore
import Logging

/// Persistent per-user pods whose server died: the one that finds them (at start-up, on its
/// periodic sweep, or when their user logs in) relabels them to itself and puts them under its
/// `persistence` timers. A pod's server is alive while the Lease its `berth.lease` label names
/// is (`KubernetesLease.isAlive`); a pod without that label (its server could not hold a Lease)
/// is never adopted by another identity. The relabel is a patch at the pod's resourceVersion, so
/// of two servers adopting at once exactly one wins; the other re-reads the pod and finds a live
/// owner. docs/architecture.md, "Ownership and clean-up".
extension KubernetesBackend {
    static let persistentUserSelector = "berth.persistent=true,berth.username"

    /// What this server does with a user's persistent pod it came across.
    enum Charge: Equatable {
        /// Its own (this identity's), or adopted just now: it goes under this server's timers.
        case own, adopted
        /// Another server's that is alive, or whose liveness cannot be told: left alone.
        case foreign
    }

    /// Whether the Lease `name` shows a live server; a missing one is dead, an unreadable one
    /// (the error propagates) counts as alive with the callers.
    func leaseIsAlive(_ name: String) async throws -> Bool {
        do {
            return KubernetesLease.isAlive(try await client.call(.GET, "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases/\(name)"))
        } catch let error as KubernetesAPIError where error.status == 404 {
            return false
        }
    }

    /// Takes charge of user pod `name` when it is this server's or its server is dead; nil when
    /// the pod is gone.
    func takeCharge(of name: String) async -> Charge? {
        let own = KubernetesPodSpec.serverName(identity)
        for _ in 0..<3 {
            let pod: KubernetesClient.Pod
            do {
                guard let found = try await client.getPod(namespace: namespace, name: name) else { return nil }
                pod = found
            } catch {
                logger.log(.warning, "KUBERNETES_ORPHAN_CLEANUP_FAILED", "could not read persistent pod \(namespace)/\(name): \(error)")
                return .foreign
            }
            let labels = pod.value["metadata"]?["labels"]
            let server = labels?[ServerIdentity.label]?.stringValue
            let leaseName = labels?[KubernetesLease.label]?.stringValue
            guard labels?["berth.persistent"]?.stringValue == "true", labels?["berth.username"] != nil else { return .foreign }
            if server == own {
                // Labelled by an earlier run that could not hold the Lease: labelled now, so
                // that others can adopt the pod should this server die.
                if leaseName != lease.name && lease.isHeld {
                    _ = try? await client.relabelPod(namespace: namespace, name: name, resourceVersion: pod.resourceVersion, labels: [(KubernetesLease.label, lease.name)])
                }
                return .own
            }
            // Only a server that can prove itself alive takes over: it labels what it adopts.
            guard lease.isHeld, let leaseName, leaseName != lease.name else { return .foreign }
            do {
                guard try await !leaseIsAlive(leaseName) else { return .foreign }
            } catch {
                return .foreign
            }
            do {
                _ = try await client.relabelPod(
                    namespace: namespace, name: name, resourceVersion: pod.resourceVersion,
                    labels: [(ServerIdentity.label, own), (KubernetesLease.label, lease.name)])
                logger.log(
                    .notice, "KUBERNETES_PERSISTENT_ADOPTED", "took over a persistent pod whose server is no longer running",
                    ["pod": "\(namespace)/\(name)", "lease": "\(leaseName)", "server": "\(server ?? "")"])
                return .adopted
            } catch let error as KubernetesAPIError where error.status == 409 {
                // Changed in between (another server adopted it, or its own came back): read again.
                continue
            } catch let error as KubernetesAPIError where error.status == 404 {
                return nil
            } catch {
                logger.log(.warning, "KUBERNETES_ORPHAN_CLEANUP_FAILED", "could not take over persistent pod \(namespace)/\(name): \(error)")
                return .foreign
            }
        }
        return .foreign
    }

    /// At start-up and on each sweep: every user pod that is this server's, or whose server is
    /// dead, comes under this server's timers (a pod already under them keeps its clocks).
    func adoptUserPods() async {
        guard config.pod.mode == .persistent, !config.pod.persistentShared else { return }
        do {
            var adopted = 0
            for pod in try await client.listPods(namespace: namespace, labelSelector: Self.persistentUserSelector) {
                guard await !KubernetesPersistentPods.shared.watches(pod.name, backend: self) else { continue }
                guard let charge = await takeCharge(of: pod.name), charge != .foreign else { continue }
                let created = try await client.getPod(namespace: pod.namespace, name: pod.name).flatMap { KubernetesPersistentPods.creationTime($0.value) }
                await KubernetesPersistentPods.shared.adopt(pod.name, backend: self, created: created)
                if charge == .own {
                    logger.log(.info, "KUBERNETES_PERSISTENT_ADOPTED", "looking after a persistent pod found at start-up", ["pod": "\(pod.namespace)/\(pod.name)"])
                }
                adopted += 1
            }
            logger.log(.debug, "KUBERNETES_PERSISTENT_CHECKED", "looked for persistent pods to look after", ["adopted": "\(adopted)"])
        } catch {
            logger.log(.warning, "KUBERNETES_ORPHAN_CLEANUP_FAILED", "could not look for persistent pods: \(error)")
        }
    }
}
