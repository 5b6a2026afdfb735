import BerthConfig
import BerthCore
import BerthSSHCipher
import BerthSSHEngine
import BerthSSHKex
import BerthSSHKeys
import Foundation
import Testing
@testable import BerthSSH

@Suite struct HostKeyTests {
    @Test func garbageIsAnInvalidKeyNamingTheEntry() {
        do {
            _ = try HostKeyLoader.load(entries: ["-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----"])
            Issue.record("expected an error")
        } catch {
            #expect(error is HostKeyConfigError)
            #expect("\(error)".contains("ssh.hostkeys[0]"))
        }
    }

    @Test func missingFileNamesThePath() {
        do {
            _ = try HostKeyLoader.load(entries: ["/nonexistent/berth/key"])
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("/nonexistent/berth/key"))
        }
    }

    @Test func generatedKeysAreKeptAndReused() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-hostkeys-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = try HostKeyLoader.loadOrGenerate(stateDirectory: directory, logger: .init(label: "test"))
        #expect(first.map(\.keyType) == ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"])
        let second = try HostKeyLoader.loadOrGenerate(stateDirectory: directory, logger: .init(label: "test"))
        #expect(second.map(\.publicKeyBlob) == first.map(\.publicKeyBlob))
        let mode = try FileManager.default.attributesOfItem(atPath: directory + "/ssh_host_rsa_key")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }

    /// The old temporary name (`<path>.tmp-<pid>`) was predictable and opened without O_EXCL:
    /// a symlink planted there made Berth write the key into the file it pointed at.
    @Test func keyFileWriterDoesNotFollowASymlinkAtThePredictableTemporaryName() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim", path = directory + "/ssh_host_ed25519_key"
        try "victim".write(toFile: victim, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: path + ".tmp-\(getpid())", withDestinationPath: victim)
        try KeyFileWriter.write("secret key", to: path)
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "victim")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "secret key")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect(attributes[.type] as? FileAttributeType == .typeRegular)
        #expect(attributes[.posixPermissions] as? Int == 0o600)
    }

    /// Whatever already exists at the temporary name (symlink or file) is neither followed nor
    /// reused nor removed: the write fails.
    @Test func keyFileWriterRefusesAnExistingTemporaryFile() throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let victim = directory + "/victim", path = directory + "/key", planted = directory + "/planted"
        try "victim".write(toFile: victim, atomically: false, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: victim)
        #expect(throws: BerthError.self) { try KeyFileWriter.write("secret key", to: path, temporaryName: { planted }) }
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "victim")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: planted) == victim)
        #expect(!FileManager.default.fileExists(atPath: path))

        try FileManager.default.removeItem(atPath: planted)
        try "someone else's".write(toFile: planted, atomically: false, encoding: .utf8)
        #expect(throws: BerthError.self) { try KeyFileWriter.write("secret key", to: path, temporaryName: { planted }) }
        #expect(try String(contentsOfFile: planted, encoding: .utf8) == "someone else's")
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    private static func temporaryDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-keyfile-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    @Test func hostKeyAlgorithmsThatNoKeyCanMakeAreAStartupError() throws {
        var ssh = SSHConfig()
        ssh.hostKeyAlgorithms = ["rsa-sha2-512"]
        #expect(throws: HostKeyConfigError.self) {
            _ = try SSHFrontEndSettings(config: ssh, hostKeys: [try SSHPrivateKey.generate(.ed25519)])
        }
        ssh.hostKeyAlgorithms = ["rsa-sha2-512", "ssh-ed25519"]
        let settings = try SSHFrontEndSettings(config: ssh, hostKeys: [try SSHPrivateKey.generate(.ed25519)])
        #expect(settings.engine.hostKeyAlgorithms == ["rsa-sha2-512", "ssh-ed25519"])
    }

    /// The configuration validates names without depending on the engine; the lists must agree.
    @Test func configurationNamesMatchWhatTheEngineImplements() {
        #expect(Set(SSHAlgorithmNames.ciphers) == Set(SSHCipherSuite.supportedCiphers))
        #expect(SSHAlgorithmNames.defaultCiphers == SSHCipherSuite.defaultCiphers)
        #expect(Set(SSHAlgorithmNames.macs) == Set(SSHCipherSuite.supportedMACs))
        #expect(SSHAlgorithmNames.defaultMACs == SSHCipherSuite.defaultMACs)
        #expect(Set(SSHAlgorithmNames.kex) == Set(SSHKexAlgorithms.supported))
        #expect(SSHAlgorithmNames.defaultKex == SSHKexAlgorithms.defaults)
        #expect(SSHAlgorithmNames.defaultPublicKeyAlgorithms == SSHServerSettings.defaultUserAuthKeyAlgorithms)
        #expect(SSHAlgorithmNames.defaultHostKeyAlgorithms == SSHServerSettings.defaultHostKeyAlgorithms)
        #expect(Set(SSHAlgorithmNames.certificateAlgorithms) == Set(CertifiedHostKey.algorithms.keys))
        #expect(Set(SSHAlgorithmNames.certificateAlgorithms) == Set(SSHCertificate.signatureAlgorithms.keys))
    }

    @Test func listenAddressSplitsIPv6() throws {
        let (host, port) = try SSHFrontEndSettings.split(listen: "[::1]:2222")
        #expect(host == "::1")
        #expect(port == 2222)
    }
}
