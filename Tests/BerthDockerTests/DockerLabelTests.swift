import Testing
@testable import BerthDocker
import BerthConfig
import BerthCore

@Suite struct DockerLabelTests {
    @Test func containersAreLabelledWithTheAuthenticatedName() {
        let metadata = ConnectionMetadata(
            connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!, remoteAddress: RemoteAddress(ip: "10.0.0.7", port: 5022),
            username: "root", authenticatedUsername: "bob")
        let labels = Dictionary(uniqueKeysWithValues: DockerContainerSpec.labels(metadata, owner: ServerIdentity(name: "berth-a")))
        #expect(labels["berth.username"] == "bob")
        // The identity is the backend's, not the process's: two servers in one process label apart.
        #expect(labels[ServerIdentity.label] == "berth-a")
        #expect(Dictionary(uniqueKeysWithValues: DockerContainerSpec.labels(metadata, owner: ServerIdentity(name: "berth-b")))[ServerIdentity.label] == "berth-b")
    }

    @Test func ordinaryCapabilitiesAreBerthsSetAndTheOperatorsAdditions() {
        let plain = DockerBackend.ordinaryCapabilities(DockerConfig())
        #expect(plain.contains("CHOWN") && !plain.contains("NET_RAW") && !plain.contains("SYS_ADMIN"))
        var config = DockerConfig()
        config.execution.host = .object([("capadd", .array([.string("NET_RAW")]))])
        #expect(DockerBackend.ordinaryCapabilities(config).isSuperset(of: plain.union(["NET_RAW"])))
    }
}
