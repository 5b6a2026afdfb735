import BerthConfig
import BerthCore
import Logging

/// `persistence.volume` on Kubernetes: one PersistentVolumeClaim per user, named as Docker's
/// volumes are (`UserPodName` with `namePrefix`), mounted in the user's persistent pod and never
/// deleted by Berth (docs/configuration.md, "persistence").
enum KubernetesUserVolume {
    /// The pod's name for the claim's volume.
    static let podVolumeName = "berth-user-volume"

    static func claimName(_ volume: PersistenceVolumeConfig, username: String) -> String {
        UserPodName.make(prefix: volume.namePrefix, username: username)
    }

    static func claim(_ volume: PersistenceVolumeConfig, name: String, username: String) -> ConfigValue {
        var spec: [(key: String, value: ConfigValue)] = [
            ("accessModes", .array([.string("ReadWriteOnce")])),
            ("resources", .object([("requests", .object([("storage", .string(volume.size))]))])),
        ]
        if !volume.storageClass.isEmpty { spec.append(("storageClassName", .string(volume.storageClass))) }
        return .object([
            ("apiVersion", .string("v1")), ("kind", .string("PersistentVolumeClaim")),
            (
                "metadata",
                .object([
                    ("name", .string(name)),
                    ("labels", .object([("berth.username", .string(KubernetesPodSpec.labelValue(username))), ("berth.persistent", .string("true"))])),
                ])
            ),
            ("spec", .object(spec)),
        ])
    }

    /// The pod body with the claim mounted at `mountPath` in the console container; nil when the
    /// body has no such container or its `volumes`/`volumeMounts` are not lists (a pod without
    /// the user's volume must not start as if it had it).
    static func mounting(_ body: ConfigValue, claim: String, mountPath: String, console: Int) -> ConfigValue? {
        guard case .object(var fields) = body, let specIndex = fields.firstIndex(where: { $0.key == "spec" }),
            case .object(var spec) = fields[specIndex].value,
            let containersIndex = spec.firstIndex(where: { $0.key == "containers" }), case .array(var containers) = spec[containersIndex].value,
            console >= 0, console < containers.count, case .object(var container) = containers[console]
        else { return nil }
        let volume = ConfigValue.object([("name", .string(podVolumeName)), ("persistentVolumeClaim", .object([("claimName", .string(claim))]))])
        guard append(volume, to: "volumes", in: &spec),
            append(.object([("name", .string(podVolumeName)), ("mountPath", .string(mountPath))]), to: "volumeMounts", in: &container)
        else { return nil }
        containers[console] = .object(container)
        spec[containersIndex].value = .array(containers)
        fields[specIndex].value = .object(spec)
        return .object(fields)
    }

    private static func append(_ item: ConfigValue, to key: String, in fields: inout [(key: String, value: ConfigValue)]) -> Bool {
        guard let index = fields.firstIndex(where: { $0.key == key }) else {
            fields.append((key, .array([item])))
            return true
        }
        switch fields[index].value {
        case .array(let items): fields[index].value = .array(items + [item])
        case .null: fields[index].value = .array([item])
        default: return false
        }
        return true
    }
}

extension KubernetesBackend {
    /// Creates the user's claim, or finds it (409: made earlier, or by another server just now).
    /// A claim of that name that is not this user's is refused rather than mounted.
    func ensureUserClaim(username: String, logger: Logger) async throws -> String {
        let volume = persistence.volume
        let name = KubernetesUserVolume.claimName(volume, username: username)
        let path = "/api/v1/namespaces/\(namespace)/persistentvolumeclaims"
        do {
            _ = try await client.call(.POST, path, body: ConfigRenderer.compactJSON(KubernetesUserVolume.claim(volume, name: name, username: username)))
            logger.log(.info, "KUBERNETES_VOLUME_CREATED", "created the user's volume claim", ["claim": "\(namespace)/\(name)"])
            return name
        } catch let error as KubernetesAPIError where error.status == 409 {
            let found: ConfigValue
            do {
                found = try await client.call(.GET, "\(path)/\(name)")
            } catch {
                throw KubernetesError("KUBERNETES_VOLUME_FAILED", "cannot read the user's volume claim \(namespace)/\(name): \(error)")
            }
            guard found["metadata"]?["labels"]?["berth.username"]?.stringValue == KubernetesPodSpec.labelValue(username) else {
                throw KubernetesError("KUBERNETES_VOLUME_NAME_TAKEN", "volume claim \(namespace)/\(name) exists but is not the user's (no matching berth.username label)")
            }
            return name
        } catch {
            throw KubernetesError(
                "KUBERNETES_VOLUME_FAILED", "cannot create the user's volume claim \(namespace)/\(name) (RBAC needs create and get on persistentvolumeclaims): \(error)")
        }
    }
}
