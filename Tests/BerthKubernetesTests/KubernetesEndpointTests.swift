import BerthConfig
import Foundation
import Testing
@testable import BerthKubernetes

@Suite struct KubernetesEndpointTests {
    @Test func explicitHostWinsAndDefaultsToHTTPS() throws {
        var connection = KubernetesConfig.Connection()
        connection.host = "10.1.2.3:6443"
        connection.insecure = true
        let endpoint = try KubernetesEndpoint.resolve(connection, environment: ["KUBERNETES_SERVICE_HOST": "10.9.9.9"])
        #expect(endpoint.baseURL == "https://10.1.2.3:6443")
        #expect(endpoint.tls != nil)
    }

    @Test func inClusterDefaultsUseTheServiceAccount() throws {
        // Outside a cluster the service account's CA file is missing, and the error names it.
        let environment = ["KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"]
        let error = #expect(throws: KubernetesError.self) { try KubernetesEndpoint.resolve(KubernetesConfig.Connection(), environment: environment) }
        #expect(error?.message == "cannot read /var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    }

    @Test func nothingConfiguredIsAClearError() {
        #expect(throws: KubernetesError.self) { try KubernetesEndpoint.resolve(KubernetesConfig.Connection(), environment: [:]) }
    }

    @Test func kubeconfigCurrentContextGivesServerAndToken() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-kubeconfig-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let yaml = """
            apiVersion: v1
            kind: Config
            current-context: lab
            clusters:
            - name: other
              cluster: {server: "https://wrong:1"}
            - name: labcluster
              cluster: {server: "http://127.0.0.1:8001"}
            users:
            - name: labuser
              user: {token: s3cret}
            contexts:
            - name: lab
              context: {cluster: labcluster, user: labuser}
            """
        let path = directory.appendingPathComponent("config").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        var connection = KubernetesConfig.Connection()
        connection.kubeconfig = path
        let endpoint = try KubernetesEndpoint.resolve(connection, environment: [:])
        #expect(endpoint.baseURL == "http://127.0.0.1:8001")
        #expect(endpoint.currentToken() == "s3cret")
        #expect(endpoint.tls == nil)
    }
}
