import Testing
@testable import BerthConfig

@Suite struct ConfigRedactionTests {
    /// Every secret below contains "SECRET"; none may reach the output of `berth config check`.
    static let withSecrets = """
        ssh:
          hostkeys:
            - /etc/berth/host_ed25519
            - "-----BEGIN OPENSSH PRIVATE KEY-----\\nHOSTKEY-SECRET\\n-----END OPENSSH PRIVATE KEY-----\\n"
        auth:
          password:
            method: static
            static:
              users:
                - username: alice
                  passwordHash: "$6$saltsalt$HASH-SECRET"
          publicKey:
            method: webhook
            webhook:
              url: "https://hook:HOOKPASS-SECRET@auth.example:8443/pk"
              cert: /etc/berth/webhook.crt
              key: "-----BEGIN PRIVATE KEY-----\\nWEBHOOKKEY-SECRET\\n-----END PRIVATE KEY-----\\n"
        configserver:
          url: "https://config.example/config"
          cert: /etc/berth/config.crt
          key: /etc/berth/config.key
        docker:
          connection:
            host: "tcp://docker.example:2376"
            cert: /etc/berth/docker.crt
            key: "-----BEGIN EC PRIVATE KEY-----\\nDOCKERKEY-SECRET\\n-----END EC PRIVATE KEY-----\\n"
          execution:
            auth: {username: bob, password: REGISTRY-SECRET, auth: AUTH-SECRET, identitytoken: IDTOKEN-SECRET, serveraddress: registry.example}
        kubernetes:
          connection:
            host: "https://kube.example:6443"
            bearerToken: KUBETOKEN-SECRET
            key: "-----BEGIN EC PRIVATE KEY-----\\nKUBEKEY-SECRET\\n-----END EC PRIVATE KEY-----\\n"
        sshproxy:
          server: upstream.example
          username: bob
          password: PROXYPASS-SECRET
          privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\\nPROXYKEY-SECRET\\n-----END OPENSSH PRIVATE KEY-----\\n"
          allowedHostKeyFingerprints: ["SHA256:abc"]
        audit:
          s3:
            accessKey: AKIDVISIBLE
            secretKey: S3-SECRET
            bucket: audit
            endpoint: "http://minio:MINIOPASS-SECRET@127.0.0.1:9000"

        """

    @Test func configCheckOutputCarriesNoSecret() throws {
        let loaded = try ConfigLoader.parse(Self.withSecrets, format: .yaml, source: "secrets.yaml")
        #expect(loaded.config.sshproxy.password == "PROXYPASS-SECRET")
        for output in [ConfigRenderer.yaml(loaded.config), ConfigRenderer.json(loaded.config)] {
            #expect(!output.contains("SECRET"), "\(output)")
            #expect(output.components(separatedBy: "<redacted>").count - 1 == 14)
            // What is not secret stays readable: paths, account names, hosts.
            for shown in [
                "/etc/berth/host_ed25519", "/etc/berth/config.key", "/etc/berth/webhook.crt", "AKIDVISIBLE", "registry.example",
                "https://hook:<redacted>@auth.example:8443/pk", "http://minio:<redacted>@127.0.0.1:9000", "tcp://docker.example:2376",
            ] {
                #expect(output.contains(shown), "\(shown)")
            }
        }
    }

    @Test func emptySecretsStayEmptySoDefaultsReadBack() throws {
        let loaded = try ConfigLoader.parse("auth:\n  password:\n    method: webhook\n    webhook:\n      url: http://127.0.0.1:8080\n", format: .yaml, source: "a.yaml")
        let rendered = ConfigRenderer.yaml(loaded.config)
        #expect(!rendered.contains("<redacted>"))
        #expect(try ConfigLoader.parse(rendered, format: .yaml, source: "again.yaml").config == loaded.config)
    }

    @Test func urlsWithoutAPasswordAreUnchanged() {
        #expect(ConfigRedaction.url("unix:///var/run/docker.sock") == .string("unix:///var/run/docker.sock"))
        #expect(ConfigRedaction.url("https://user@h/p:x@y") == .string("https://user@h/p:x@y"))
        #expect(ConfigRedaction.url("https://u:p@h/x") == .string("https://u:<redacted>@h/x"))
        #expect(ConfigRedaction.keyMaterial("relative/key.pem") == .string("relative/key.pem"))
    }
}
