import Testing
@testable import BerthConfig

@Suite struct PersistenceConfigTests {
    private func load(_ yaml: String) throws -> BerthConfig { try readConfig(minimalAuthYAML + yaml).config }
    private func problems(_ yaml: String) -> [String] { configProblems(minimalAuthYAML + yaml) }

    @Test func defaults() throws {
        let persistence = try load("").persistence
        #expect(persistence.serverIdentity == "")
        #expect(persistence.idleTimeout == .seconds(1800))
        #expect(persistence.maxLifetime == .zero)
        #expect(!persistence.volume.enabled)
        #expect(persistence.volume.namePrefix == "berth-home")
        #expect(persistence.volume.size == "1Gi" && persistence.volume.storageClass == "")
        #expect(persistence.resumeWindow == .seconds(300))
        #expect(persistence.resume == .auto)
        #expect(persistence.resumeBuffer == 65536)
    }

    @Test func everyKeyIsRead() throws {
        let config = try load(
            """
            docker: {execution: {mode: persistent}}
            persistence:
              serverIdentity: berth-a.1
              idleTimeout: 90s
              maxLifetime: 8h
              volume: {enabled: true, namePrefix: home, mountPath: /data}
              resumeWindow: 5m
              resume: menu
              resumeBuffer: 4096
            """)
        let persistence = config.persistence
        #expect(config.docker.execution.mode == .persistent)
        #expect(persistence.serverIdentity == "berth-a.1")
        #expect(persistence.idleTimeout == .seconds(90))
        #expect(persistence.maxLifetime == .seconds(8 * 3600))
        #expect(
            persistence.volume
                == {
                    var v = PersistenceVolumeConfig(); v.enabled = true; v.namePrefix = "home"; v.mountPath = "/data"; return v
                }())
        #expect(persistence.resumeWindow == .seconds(300))
        #expect(persistence.resume == ResumePolicy.menu)
        #expect(persistence.resumeBuffer == 4096)
        // Zero turns the timers off.
        let off = try load("persistence: {idleTimeout: 0s, maxLifetime: 0, resumeWindow: 0s}\n").persistence
        #expect(off.idleTimeout == .zero && off.maxLifetime == .zero && off.resumeWindow == .zero)
    }

    @Test func badValuesAreRefusedByKey() {
        #expect(problems("persistence: {serverIdentity: \"a b\"}\n").contains { $0.hasPrefix("persistence.serverIdentity: must be") })
        #expect(problems("persistence: {serverIdentity: \"-a\"}\n").contains { $0.hasPrefix("persistence.serverIdentity: must be") })
        #expect(problems("persistence: {serverIdentity: \"\(String(repeating: "a", count: 64))\"}\n").contains { $0.hasPrefix("persistence.serverIdentity:") })
        #expect(problems("persistence: {idleTimeout: 10ms}\n").contains { $0.hasPrefix("persistence.idleTimeout: must be at least 1s") })
        #expect(problems("persistence: {maxLifetime: soon}\n").contains { $0.hasPrefix("persistence.maxLifetime: \"soon\" is not a duration") })
        #expect(problems("persistence: {resume: always}\n") == ["persistence.resume: \"always\" is not one of auto, menu, never"])
        #expect(problems("persistence: {resumeBuffer: 10}\n").contains { $0.hasPrefix("persistence.resumeBuffer: must be between 1024 and") })
        #expect(problems("persistence: {resumeBuffer: 999999999}\n").contains { $0.hasPrefix("persistence.resumeBuffer:") })
        #expect(problems("persistence: {volume: {mountPath: home}}\n").contains { $0.hasPrefix("persistence.volume.mountPath:") })
        #expect(problems("persistence: {volume: {mountPath: \"/a:/b\"}}\n").contains { $0.hasPrefix("persistence.volume.mountPath:") })
        #expect(problems("persistence: {volume: {namePrefix: \"x/y\"}}\n").contains { $0.hasPrefix("persistence.volume.namePrefix:") })
        for size in ["0", "0.0Gi", "-1Gi", "1GB", "1e3", "Gi", "1.Gi", "1 Gi", "1Gi ", "1234567890123456789"] {
            #expect(
                problems("persistence: {volume: {size: \"\(size)\"}}\n").contains { $0.hasPrefix("persistence.volume.size: must be a positive Kubernetes quantity") }, "\(size)")
        }
        for size in ["1Gi", "500Mi", "10G", "0.5Ti", "1073741824", "2k"] {
            #expect(!problems("persistence: {volume: {size: \"\(size)\"}}\n").contains { $0.hasPrefix("persistence.volume.size") }, "\(size)")
        }
        for name in ["Fast", "fast_ssd", "-fast", "fast.", String(repeating: "a", count: 64)] {
            #expect(problems("persistence: {volume: {storageClass: \"\(name)\"}}\n").contains { $0.hasPrefix("persistence.volume.storageClass: must be") }, "\(name)")
        }
        #expect(!problems("persistence: {volume: {storageClass: fast-ssd.example.com}}\n").contains { $0.hasPrefix("persistence.volume.storageClass") })
        #expect(problems("persistence: {volume: {sise: 1Gi}}\n") == ["persistence.volume.sise: unknown key"])
        #expect(problems("persistence: {resumeWindw: 1m}\n") == ["persistence.resumeWindw: unknown key"])
    }

    @Test func persistentModeRefusesWhatCannotWork() {
        #expect(
            problems("docker: {execution: {mode: persistent, disableAgent: true}}\n").contains { $0.hasPrefix("docker.execution.disableAgent: persistent mode needs the agent") })
        #expect(problems("docker: {execution: {mode: persistent, containername: x}}\n").contains { $0.hasPrefix("docker.execution.containername:") })
        #expect(
            problems("docker: {execution: {mode: persistent, pool: {size: 2}}}\n").contains {
                $0.hasPrefix("docker.execution.pool.size: the pool cannot be used in persistent mode")
            })
        let kubernetes = "backend: kubernetes\nkubernetes: {pod: {metadata: {namespace: x}}}\n"
        let volume = try? readConfig(minimalAuthYAML + kubernetes + "persistence: {volume: {enabled: true, size: 5Gi, storageClass: fast}}\n")
        #expect(volume?.config.persistence.volume.size == "5Gi" && volume?.config.persistence.volume.storageClass == "fast")
        #expect(volume?.warnings == [])
        // Every user shares that pod: no user's claim belongs in it.
        let shared = "backend: kubernetes\nkubernetes: {pod: {metadata: {namespace: x, name: box}, mode: persistent, persistentShared: true}}\n"
        #expect(
            problems(shared + "persistence: {volume: {enabled: true}}\n").contains {
                $0.hasPrefix("persistence.volume.enabled: cannot be used with kubernetes.pod.persistentShared")
            })
        #expect(problems(shared + "persistence: {volume: {enabled: false}}\n").isEmpty)
        // The claim settings say out loud that Docker ignores them.
        let docker = try? readConfig(minimalAuthYAML + "persistence: {volume: {enabled: true, size: 5Gi, storageClass: fast}}\n")
        #expect(docker?.warnings.filter { $0.hasPrefix("CONFIG_SETTING_UNUSED: persistence.volume.") }.count == 2)
        #expect(problems(kubernetes + "persistence: {serverIdentity: k1, resumeWindow: 1m, idleTimeout: 5m, maxLifetime: 1h}\n").isEmpty)
    }

    @Test func renderedPersistenceReadsBack() throws {
        let original = try load(
            "persistence: {serverIdentity: b1, idleTimeout: 2m, maxLifetime: 1h, resume: never, resumeBuffer: 2048, resumeWindow: 30s, volume: {enabled: true, size: 3Gi, storageClass: slow}}\n"
        )
        let reread = try ConfigLoader.parse(ConfigRenderer.yaml(original), format: .yaml, source: "rendered.yaml")
        #expect(reread.config == original)
    }

    @Test func aConfigWebhookCannotChangePersistence() throws {
        let base = try load("")
        var merged = base
        merged.persistence.idleTimeout = .seconds(5)
        let answer = try ConfigValue.parse(#"{"persistence": {"idleTimeout": "5s"}}"#, format: .json, source: "answer")
        let refusals = ConfigWebhookPolicy(allow: Set(ConfigWebhookPermission.allCases), ordinaryCapabilities: []).refusals(answer: answer, base: base, merged: merged)
        #expect(refusals.map(\.path) == ["persistence"])
        #expect(refusals.first?.category == nil)
    }
}
