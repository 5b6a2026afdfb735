import Testing
@testable import BerthKubernetes
import BerthConfig
import BerthCore

@Suite struct KubernetesLabelTests {
    @Test func podsAreLabelledWithTheAuthenticatedName() {
        let metadata = ConnectionMetadata(
            connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!, remoteAddress: RemoteAddress(ip: "10.0.0.7", port: 5022),
            username: "root", authenticatedUsername: "bob")
        let pod = KubernetesPodSpec.body(
            pod: KubernetesConfig.Pod(), owner: ServerIdentity(name: "test"), metadata: metadata, command: ["/bin/sh"], environment: [:], tty: false, interactive: false)
        #expect(pod["metadata"]?["labels"]?["berth.username"] == .string("bob"))
        #expect(pod["metadata"]?["labels"]?[ServerIdentity.label] == .string("test"))
    }
}
