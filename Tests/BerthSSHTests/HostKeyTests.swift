import NIOSSH
import Testing
@testable import BerthSSH

@Suite struct HostKeyTests {
    @Test(arguments: GeneratedHostKey.Kind.allCases)
    func generatedKeysRoundTripThroughOpenSSHFormat(kind: GeneratedHostKey.Kind) throws {
        let key = GeneratedHostKey.generate(kind)
        let text = key.openSSHPrivateKey(comment: "test")
        #expect(text.hasPrefix("-----BEGIN OPENSSH PRIVATE KEY-----\n"))
        let parsed = try HostKeyLoader.parse(text: text)
        #expect(String(openSSHPublicKey: parsed.publicKey) == key.publicKeyLine)
    }

    @Test func rsaKeysAreRefusedWithAdvice() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu\n-----END RSA PRIVATE KEY-----\n"
        #expect(throws: HostKeyConfigError.self) { try HostKeyLoader.load(entries: [pem]) }
        do {
            _ = try HostKeyLoader.load(entries: [pem])
        } catch {
            #expect("\(error)".contains("berth keygen"))
            #expect("\(error)".contains("ssh.hostkeys[0]"))
        }
    }

    @Test func garbageIsAMalformedKey() {
        #expect(throws: HostKeyConfigError.self) { try HostKeyLoader.load(entries: ["-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"]) }
    }

    @Test func missingFileNamesThePath() {
        do {
            _ = try HostKeyLoader.load(entries: ["/nonexistent/berth/key"])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("/nonexistent/berth/key"))
        }
    }

    @Test func listenAddressSplitsIPv6() throws {
        let (host, port) = try SSHFrontEndSettings.split(listen: "[::1]:2222")
        #expect(host == "::1")
        #expect(port == 2222)
    }
}
