import BerthConfig
import BerthCore
import Foundation
import Logging

/// Berth's own pod, when Berth runs in the cluster in the namespace of its users' pods. The pods
/// of connections and sessions name it in `ownerReferences`, so Kubernetes' garbage collector
/// removes them when the Berth pod goes, even if this process never runs its clean-up (killed,
/// rescheduled under a new name). Persistent pods get no owner: they are meant to outlive the
/// server. docs/architecture.md, "Ownership and clean-up".
struct KubernetesOwner: Sendable {
    let reference: ConfigValue

    /// Where Berth learns its pod: `BERTH_POD_NAME` / `BERTH_POD_NAMESPACE` (the downward API, as
    /// deploy/kubernetes sets them), else the pod's host name and the service account's namespace.
    static func find(
        client: KubernetesClient, usersNamespace: String, environment: [String: String], logger: Logger,
        namespaceFile: String = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    ) async -> KubernetesOwner? {
        let inCluster = !(environment["KUBERNETES_SERVICE_HOST"] ?? "").isEmpty
        var name = environment["BERTH_POD_NAME"] ?? ""
        var namespace = environment["BERTH_POD_NAMESPACE"] ?? ""
        if name.isEmpty && inCluster { name = environment["HOSTNAME"] ?? ProcessInfo.processInfo.hostName }
        if namespace.isEmpty && inCluster {
            namespace = (try? String(contentsOfFile: namespaceFile, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
        }
        guard !name.isEmpty, !namespace.isEmpty else { return nil }
        // An owner in another namespace counts as missing: the collector would remove the pods at once.
        guard namespace == usersNamespace else {
            logger.log(
                .info, "KUBERNETES_OWNER_NOT_SET", "user pods get no owner reference: Berth's pod is in another namespace",
                ["pod": "\(namespace)/\(name)", "usersNamespace": "\(usersNamespace)"])
            return nil
        }
        do {
            guard let pod = try await client.getPod(namespace: namespace, name: name), case .string(let uid)? = pod.value["metadata"]?["uid"], !uid.isEmpty else {
                logger.log(.warning, "KUBERNETES_OWNER_NOT_SET", "user pods get no owner reference: Berth's own pod \(namespace)/\(name) was not found")
                return nil
            }
            logger.log(.info, "KUBERNETES_OWNER_SET", "user pods name Berth's pod as their owner", ["pod": "\(namespace)/\(name)", "uid": "\(uid)"])
            return KubernetesOwner(
                reference: .object([
                    ("apiVersion", .string("v1")), ("kind", .string("Pod")), ("name", .string(name)), ("uid", .string(uid)),
                    // Not the controller (no controller makes these pods), and deleting Berth's pod need not wait for them.
                    ("controller", .bool(false)), ("blockOwnerDeletion", .bool(false)),
                ]))
        } catch {
            logger.log(.warning, "KUBERNETES_OWNER_NOT_SET", "user pods get no owner reference: reading Berth's own pod failed (RBAC needs get on pods): \(error)")
            return nil
        }
    }

    func owning(_ body: ConfigValue) -> ConfigValue {
        body.merging(.object([("metadata", .object([("ownerReferences", .array([reference]))]))]))
    }
}
