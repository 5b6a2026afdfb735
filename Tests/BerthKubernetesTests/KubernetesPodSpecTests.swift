import BerthConfig
import BerthCore
import Testing
@testable import BerthKubernetes

@Suite struct KubernetesPodSpecTests {
    private let metadata = ConnectionMetadata(
        connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!, remoteAddress: RemoteAddress(ip: "192.0.2.7", port: 4000),
        username: "alice", authenticatedUsername: "alice",
        metadata: ["team": MetadataValue(value: "lab"), "OIDC_TOKEN": MetadataValue(value: "secret-token", sensitive: true)],
        environment: ["PLAIN": MetadataValue(value: "plain-value"), "API_KEY": MetadataValue(value: "secret-key", sensitive: true)])

    private func pod(_ yaml: String = "") throws -> KubernetesConfig.Pod {
        let text = "auth: {password: {method: webhook, webhook: {url: http://127.0.0.1:8080}}}\nbackend: kubernetes\nkubernetes:\n  pod:\n    metadata: {namespace: users}\n" + yaml
        return try ConfigReader.read(try ConfigValue.parse(text, format: .yaml, source: "t"), environment: [:]).config.kubernetes.pod
    }

    private func body(_ pod: KubernetesConfig.Pod, environment: [String: String] = [:], persistent: KubernetesPodSpec.Persistent? = nil) -> ConfigValue {
        KubernetesPodSpec.body(
            pod: pod, owner: ServerIdentity(name: "test"), metadata: metadata, command: ["idle"], environment: environment, tty: false, interactive: false, persistent: persistent)
    }

    private func container(_ body: ConfigValue, _ number: Int = 0) -> ConfigValue? {
        guard case .array(let containers)? = body["spec"]?["containers"], number < containers.count else { return nil }
        return containers[number]
    }

    @Test func podsAreHardenedByDefault() throws {
        let spec = body(try pod())
        #expect(spec["spec"]?["automountServiceAccountToken"] == .bool(false))
        let context = try #require(container(spec)?["securityContext"])
        #expect(context["allowPrivilegeEscalation"] == .bool(false))
        #expect(context["capabilities"]?["drop"] == .array([.string("ALL")]))
        #expect(context["capabilities"]?["add"] == .array(ContainerHardening.capabilities.map(ConfigValue.string)))
        #expect(!ContainerHardening.capabilities.contains("NET_RAW") && !ContainerHardening.capabilities.contains("MKNOD"))
        #expect(context["seccompProfile"]?["type"] == .string("RuntimeDefault"))
        #expect(context["runAsNonRoot"] == nil)
        #expect(container(spec)?["resources"]?["limits"]?["memory"] == .string("2Gi"))
        #expect(container(spec)?["resources"]?["limits"]?["cpu"] == .string("2"))
        #expect(container(spec)?["resources"]?["requests"]?["cpu"] == .string("100m"))
        #expect(spec["metadata"]?["namespace"] == .string("users"))
    }

    @Test func theOperatorsValuesWinKeyByKey() throws {
        let spec = body(
            try pod(
                """
                    spec:
                      automountServiceAccountToken: true
                      securityContext: {seccompProfile: {type: Unconfined}}
                      containers:
                      - name: shell
                        image: guest
                        securityContext: {capabilities: {add: [NET_RAW]}, runAsUser: 1000}
                        resources: {limits: {memory: 8Gi}}
                      - {name: sidecar, image: helper, securityContext: {allowPrivilegeEscalation: true}}
                      - {name: privileged, image: helper, securityContext: {privileged: true}}
                      - {name: admin, image: helper, securityContext: {capabilities: {add: [SYS_ADMIN]}}}
                """))
        #expect(spec["spec"]?["automountServiceAccountToken"] == .bool(true))
        let shell = try #require(container(spec))
        // The operator's capabilities replace Berth's whole: exactly what they wrote.
        #expect(shell["securityContext"]?["capabilities"] == .object([("add", .array([.string("NET_RAW")]))]))
        #expect(shell["securityContext"]?["runAsUser"] == .int(1000))
        #expect(shell["securityContext"]?["allowPrivilegeEscalation"] == .bool(false))
        // The pod's seccomp profile would be overridden by a container value, so none is added.
        #expect(shell["securityContext"]?["seccompProfile"] == nil)
        #expect(shell["resources"] == .object([("limits", .object([("memory", .string("8Gi"))]))]))
        let sidecar = try #require(container(spec, 1))
        #expect(sidecar["securityContext"]?["allowPrivilegeEscalation"] == .bool(true))
        #expect(sidecar["securityContext"]?["capabilities"]?["drop"] == .array([.string("ALL")]))
        #expect(sidecar["resources"]?["limits"]?["memory"] == .string("2Gi"))
        // The API server would refuse allowPrivilegeEscalation false with either of these.
        #expect(container(spec, 2)?["securityContext"]?["allowPrivilegeEscalation"] == nil)
        #expect(container(spec, 2)?["securityContext"]?["capabilities"]?["drop"] == .array([.string("ALL")]))
        #expect(container(spec, 3)?["securityContext"]?["allowPrivilegeEscalation"] == nil)
    }

    @Test func environmentStaysOutOfThePodWithTheAgent() throws {
        let spec = body(try pod("    exposeAuthMetadataAsEnv: true\n"))
        #expect(container(spec)?["env"] == nil)
        // The programs still get all of it, sensitive entries too, over the agent link.
        let program = metadata.programEnvironment(exposeMetadata: true)
        #expect(program == ["PLAIN": "plain-value", "API_KEY": "secret-key", "team": "lab", "OIDC_TOKEN": "secret-token"])
    }

    @Test func withoutTheAgentOnlyNonSensitiveEntriesEnterThePodAfterTheOperators() throws {
        let config = try pod(
            """
                spec: {containers: [{name: shell, image: guest, env: [{name: FROM_OPERATOR, value: x}]}]}
                mode: session
                disableAgent: true
                exposeAuthMetadataAsEnv: true
            """)
        let environment = metadata.programEnvironment(exposeMetadata: true, includeSensitive: false)
        #expect(environment == ["PLAIN": "plain-value", "team": "lab"])
        let spec = body(config, environment: environment)
        guard case .array(let env)? = container(spec)?["env"] else { Issue.record("no env"); return }
        #expect(env.compactMap { $0["name"]?.stringValue } == ["FROM_OPERATOR", "PLAIN", "team"])
        #expect(!ConfigRenderer.compactJSON(spec).contains("secret"))
    }

    @Test func userPodsAreLabelledWithTheAuthenticatedUserAndNotAsAConnectionsPod() throws {
        let spec = body(try pod("    mode: persistent\n"), persistent: .user)
        #expect(spec["metadata"]?["labels"]?["berth.persistent"] == .string("true"))
        #expect(spec["metadata"]?["labels"]?["berth.username"] == .string("alice"))
        #expect(spec["metadata"]?["labels"]?[KubernetesPodSpec.connectionLabel] == nil)
    }

    @Test func userPodNamesAreDNSLabelsAndDistinctNamesNeverShareOne() {
        let names = ["alice", "Alice", "a.lice", "a-lice", "a_lice", "ålice", "", "-", String(repeating: "x", count: 300), String(repeating: "x", count: 301)]
        let pods = names.map { UserPodName.make(prefix: "berth-", username: $0) }
        #expect(Set(pods).count == names.count)
        for pod in pods {
            #expect(KubernetesConfig.isDNSLabel(pod), "\(pod)")
        }
        #expect(pods[0].hasPrefix("berth-alice-"))
        #expect(UserPodName.make(prefix: "berth-", username: "alice") == pods[0])
        // SHA-256("alice") = 2bd806c97f0e00af…
        #expect(pods[0] == "berth-alice-2bd806c97f0e00af")
        #expect(KubernetesConfig.isDNSLabel(UserPodName.make(prefix: "", username: "")))
    }
}
