@testable import BerthConfig
import BerthCore
import Testing
@testable import BerthSSHProxy

/// `sshproxy.clientVersion` and the key reach the engine's client settings; a bad version line
/// is refused at load.
@Suite struct ProxyClientSettingsTests {
    @Test func clientVersionFollowsContainerSSHsRule() {
        for good in ["SSH-2.0-ContainerSSH", "SSH-2.0-Probe7 lab_1.0-x y", "SSH-2.0-a"] {
            #expect(SSHProxySectionReader.isValidClientVersion(good), "\(good)")
        }
        for bad in ["", "SSH-2.0-", "SSH-1.99-x", "SSH-2.0-a_b", "SSH-2.0-a ", "SSH-2.0-x\r\nSSH-2.0-y", "SSH-2.0-é", "SSH-2.0-a b\u{0}"] {
            #expect(!SSHProxySectionReader.isValidClientVersion(bad), "\(bad)")
        }
        let found = configProblems(
            minimalAuthYAML
                + "backend: sshproxy\nsshproxy:\n  server: h\n  username: u\n  password: p\n  allowedHostKeyFingerprints: [\"SHA256:x\"]\n  clientVersion: \"OpenSSH_9\"\n")
        #expect(found.contains { $0.hasPrefix("sshproxy.clientVersion: \"OpenSSH_9\" is not an SSH identification") })
    }

    @Test func settingsCarryTheVersionAndCredentials() throws {
        var config = SSHProxyConfig()
        config.password = "pw"
        #expect(try SSHProxyBackend.clientSettings(config, username: "u").clientVersion == SSHProxyBackend.defaultClientVersion)
        config.clientVersion = "SSH-2.0-Mine"
        let settings = try SSHProxyBackend.clientSettings(config, username: "u")
        #expect(settings.clientVersion == "SSH-2.0-Mine")
        #expect(settings.username == "u" && settings.password == "pw" && settings.privateKey == nil)
        config.privateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nnot a key\n-----END OPENSSH PRIVATE KEY-----\n"
        #expect(throws: BerthError.self) { try SSHProxyBackend.clientSettings(config, username: "u") }
    }

    private let proxyBlock = "backend: sshproxy\nsshproxy:\n  server: h\n  username: u\n  password: p\n  allowedHostKeyFingerprints: [\"SHA256:x\"]\n"

    @Test func algorithmListsAreReadCheckedAndPassedOn() throws {
        let (config, _) = try readConfig(
            minimalAuthYAML + proxyBlock
                + "  kex: [diffie-hellman-group14-sha256]\n  ciphers: [aes256-ctr]\n  macs: [hmac-sha2-512]\n  hostKeyAlgos: [rsa-sha2-256]\n")
        let settings = try SSHProxyBackend.clientSettings(config.sshproxy, username: "u")
        #expect(settings.kex == ["diffie-hellman-group14-sha256"] && settings.ciphers == ["aes256-ctr"])
        #expect(settings.macs == ["hmac-sha2-512"] && settings.hostKeyAlgorithms == ["rsa-sha2-256"])
        let defaults = try SSHProxyBackend.clientSettings(try readConfig(minimalAuthYAML + proxyBlock).config.sshproxy, username: "u")
        #expect(defaults.hostKeyAlgorithms == SSHAlgorithmNames.plainKeyAlgorithms && defaults.kex == SSHAlgorithmNames.defaultKex)
        let found = configProblems(minimalAuthYAML + proxyBlock + "  ciphers: [arcfour]\n  hostKeyAlgorithms: [ssh-rsa]\n  kex: []\n")
        #expect(found.contains { $0.hasPrefix("sshproxy.ciphers: \"arcfour\" is not supported") })
        #expect(found.contains { $0.hasPrefix("sshproxy.hostKeyAlgorithms: \"ssh-rsa\" is not supported") })
        #expect(found.contains { $0.hasPrefix("sshproxy.kex: must list at least one algorithm") })
    }
}
