import Testing
@testable import BerthConfig

@Suite struct KubernetesConfigTests {
    private let minimalAuth = "auth:\n  password:\n    method: webhook\n    webhook:\n      url: http://127.0.0.1:8080\nbackend: kubernetes\n"

    private func problems(_ yaml: String) -> [String] { configProblems(minimalAuth + yaml) }

    @Test func defaultsAndContainerSSHKeys() throws {
        let yaml =
            minimalAuth + """
                kubernetes:
                  connection: {host: "https://10.0.0.1:6443", cacertFile: /etc/ca.pem, bearerTokenFile: /var/token, qps: 5, burst: 10}
                  pod:
                    metadata: {namespace: labs}
                    spec: {containers: [{name: shell, image: "guest:1"}]}
                    mode: session
                  timeouts: {podStart: 90s}
                """
        let (config, _) = try ConfigReader.read(try ConfigValue.parse(yaml, format: .yaml, source: "t"), environment: [:])
        let kubernetes = config.kubernetes
        #expect(kubernetes.connection.host == "https://10.0.0.1:6443")
        #expect(kubernetes.connection.cacert == "/etc/ca.pem")
        #expect(kubernetes.pod.namespace == "labs")
        // The operator's metadata is merged over the default generateName.
        #expect(kubernetes.pod.metadata["generateName"] == .string("berth-"))
        #expect(kubernetes.pod.mode == .session)
        #expect(kubernetes.timeouts.podStart == .seconds(90))
        #expect(kubernetes.timeouts.podStop == .seconds(60))
    }

    @Test func theNamespaceMustBeNamed() throws {
        let spec = "  pod:\n    spec: {containers: [{name: shell, image: guest}]}\n"
        #expect(problems("kubernetes:\n" + spec) == ["kubernetes.pod.metadata.namespace: required: name the namespace for users' pods (Berth does not fall back to \"default\")"])
        #expect(
            problems("kubernetes:\n" + spec + "    metadata: {namespace: Users_1}\n").contains {
                $0.hasPrefix("kubernetes.pod.metadata.namespace: \"Users_1\" is not a namespace name")
            })
        #expect(problems("kubernetes:\n" + spec + "    metadata: {namespace: users}\n") == [])
        // Another backend does not need it (a config webhook may still pick Kubernetes, and its
        // answer is checked the same way).
        let docker = "auth:\n  password:\n    method: webhook\n    webhook:\n      url: http://127.0.0.1:8080\nbackend: docker\n"
        _ = try ConfigReader.read(try ConfigValue.parse(docker, format: .yaml, source: "t"), environment: [:])
    }

    @Test func persistentModeIsAPodPerUserUnlessShared() throws {
        let yaml = minimalAuth + "kubernetes:\n  pod:\n    metadata: {namespace: users}\n    mode: persistent\n"
        let pod = try ConfigReader.read(try ConfigValue.parse(yaml, format: .yaml, source: "t"), environment: [:]).config.kubernetes.pod
        #expect(!pod.persistentShared && pod.userPodPrefix == "berth-")
    }

    @Test func invalidValuesNameTheirKeys() {
        #expect(problems("kubernetes:\n  pod:\n    mode: sesion\n").contains { $0.hasPrefix("kubernetes.pod.mode: \"sesion\" is not one of") })
        #expect(
            problems("kubernetes:\n  pod:\n    mode: persistent\n    persistentShared: true\n")
                .contains("kubernetes.pod.metadata.name: required in persistent mode with persistentShared"))
        #expect(problems("kubernetes:\n  pod:\n    persistentShared: true\n").contains { $0.hasPrefix("kubernetes.pod.persistentShared: only applies in persistent mode") })
        #expect(problems("kubernetes:\n  pod:\n    persistentShared: yes please\n").contains { $0.hasPrefix("kubernetes.pod.persistentShared:") })
        #expect(problems("kubernetes:\n  pod:\n    spec: {}\n").contains { $0.hasPrefix("kubernetes.pod.spec.containers: required") })
        #expect(problems("kubernetes:\n  pod:\n    consoleContainerNumber: 3\n").contains { $0.hasPrefix("kubernetes.pod.consoleContainerNumber: 3 but the pod has 1") })
        #expect(problems("kubernetes:\n  pod:\n    disableAgent: true\n").contains { $0.hasPrefix("kubernetes.pod.disableAgent:") })
        #expect(problems("kubernetes:\n  pod:\n    spec: [1]\n").contains { $0.hasPrefix("kubernetes.pod.spec: expected a map") })
        #expect(problems("kubernetes:\n  timeouts:\n    podStart: soon\n").contains { $0.hasPrefix("kubernetes.timeouts.podStart:") })
        #expect(problems("kubernetes:\n  connection:\n    hots: x\n").contains("kubernetes.connection.hots: unknown key"))
    }

    @Test func podIPLinkNeedsAnAgentThatIsThePodsMainProcess() throws {
        #expect(problems("kubernetes:\n  pod:\n    agentLink: tcp\n").contains { $0.hasPrefix("kubernetes.pod.agentLink: \"tcp\" is not one of auto, podIP, exec") })
        #expect(
            problems("kubernetes:\n  pod:\n    agentLink: podIP\n    mode: persistent\n")
                .contains { $0.hasPrefix("kubernetes.pod.agentLink: podIP cannot be used: mode is persistent") })
        #expect(
            problems("kubernetes:\n  pod:\n    agentLink: podIP\n    idleCommand: [/bin/sleep, infinity]\n")
                .contains { $0.hasPrefix("kubernetes.pod.agentLink: podIP cannot be used: idleCommand is not the default") })
        #expect(
            problems("kubernetes:\n  pod:\n    agentLink: podIP\n    disableAgent: true\n    mode: session\n")
                .contains { $0.hasPrefix("kubernetes.pod.agentLink: podIP cannot be used: disableAgent is set") })
        let yaml = minimalAuth + "kubernetes:\n  pod:\n    metadata: {namespace: users}\n    agentLink: podIP\n    mode: session\n"
        let pod = try ConfigReader.read(try ConfigValue.parse(yaml, format: .yaml, source: "t"), environment: [:]).config.kubernetes.pod
        #expect(pod.agentLink == .podIP)
        let plain = minimalAuth + "kubernetes:\n  pod:\n    metadata: {namespace: users}\n"
        #expect(try ConfigReader.read(try ConfigValue.parse(plain, format: .yaml, source: "t"), environment: [:]).config.kubernetes.pod.agentLink == .auto)
    }
}
