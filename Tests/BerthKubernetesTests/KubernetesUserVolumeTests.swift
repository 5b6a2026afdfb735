import BerthConfig
import BerthCore
import Testing

@testable import BerthKubernetes

@Suite struct KubernetesUserVolumeTests {
    @Test func theClaimIsNamedAsDockersVolumesAndLabelledForItsUser() {
        var volume = PersistenceVolumeConfig()
        volume.namePrefix = "home"
        let name = KubernetesUserVolume.claimName(volume, username: "Alice Smith")
        #expect(name == UserPodName.make(prefix: "home", username: "Alice Smith") && name.hasPrefix("home-alice-smith-"))
        #expect(name != KubernetesUserVolume.claimName(volume, username: "alice smith"))
        let claim = KubernetesUserVolume.claim(volume, name: name, username: "Alice Smith")
        #expect(claim["kind"] == .string("PersistentVolumeClaim") && claim["metadata"]?["name"] == .string(name))
        #expect(claim["metadata"]?["labels"]?["berth.username"] == .string("Alice-Smith"))
        #expect(claim["metadata"]?["labels"]?["berth.persistent"] == .string("true"))
        #expect(claim["spec"]?["accessModes"] == .array([.string("ReadWriteOnce")]))
        #expect(claim["spec"]?["resources"]?["requests"]?["storage"] == .string("1Gi"))
        // No class named: the cluster's default class.
        #expect(claim["spec"]?["storageClassName"] == nil)
        volume.storageClass = "fast"
        volume.size = "20Gi"
        let sized = KubernetesUserVolume.claim(volume, name: name, username: "Alice Smith")
        #expect(sized["spec"]?["storageClassName"] == .string("fast") && sized["spec"]?["resources"]?["requests"]?["storage"] == .string("20Gi"))
    }

    @Test func theClaimIsMountedInTheConsoleContainerNextToTheOperatorsVolumes() throws {
        let pod = try ConfigValue.parse(
            """
            {"spec": {"volumes": [{"name": "cache", "emptyDir": {}}], "containers": [
              {"name": "sidecar", "image": "x"},
              {"name": "shell", "image": "y", "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}]}}
            """, format: .json, source: "t")
        let mounted = try #require(KubernetesUserVolume.mounting(pod, claim: "home-alice-0123", mountPath: "/home/alice", console: 1))
        #expect(
            mounted["spec"]?["volumes"]
                == .array([
                    .object([("name", .string("cache")), ("emptyDir", .object([]))]),
                    .object([("name", .string("berth-user-volume")), ("persistentVolumeClaim", .object([("claimName", .string("home-alice-0123"))]))]),
                ]))
        guard case .array(let containers)? = mounted["spec"]?["containers"] else { Issue.record("no containers"); return }
        #expect(containers[0]["volumeMounts"] == nil)
        #expect(
            containers[1]["volumeMounts"]
                == .array([
                    .object([("name", .string("cache")), ("mountPath", .string("/cache"))]),
                    .object([("name", .string("berth-user-volume")), ("mountPath", .string("/home/alice"))]),
                ]))
        // A console container number past the list, or volumes that are not a list: no body, so the
        // login fails (KUBERNETES_VOLUME_FAILED) instead of starting a pod without the volume.
        #expect(KubernetesUserVolume.mounting(pod, claim: "c", mountPath: "/h", console: 5) == nil)
        let odd = try ConfigValue.parse(#"{"spec": {"volumes": {"x": 1}, "containers": [{"name": "shell"}]}}"#, format: .json, source: "t")
        #expect(KubernetesUserVolume.mounting(odd, claim: "c", mountPath: "/h", console: 0) == nil)
    }
}
