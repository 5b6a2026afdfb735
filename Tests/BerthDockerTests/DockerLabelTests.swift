import Testing
@testable import BerthDocker
import BerthConfig
import BerthCore

@Suite struct DockerLabelTests {
    @Test func containersAreLabelledWithTheAuthenticatedName() {
        let metadata = ConnectionMetadata(
            connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!, remoteAddress: RemoteAddress(ip: "10.0.0.7", port: 5022),
            username: "root", authenticatedUsername: "bob")
        let labels = Dictionary(uniqueKeysWithValues: DockerContainerSpec.labels(metadata))
        #expect(labels["berth.username"] == "bob")
    }

    @Test func ordinaryCapabilitiesAreBerthsSetAndTheOperatorsAdditions() {
        let plain = DockerBackend.ordinaryCapabilities(DockerConfig())
        #expect(plain.contains("CHOWN") && !plain.contains("NET_RAW") && !plain.contains("SYS_ADMIN"))
        var config = DockerConfig()
        config.execution.host = .object([("capadd", .array([.string("NET_RAW")]))])
        #expect(DockerBackend.ordinaryCapabilities(config).isSuperset(of: plain.union(["NET_RAW"])))
    }
}
