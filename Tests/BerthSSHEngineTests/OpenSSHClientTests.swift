import BerthSSHKeys
import Foundation
import NIOCore
import XCTest

@testable import BerthSSHEngine

/// The engine against the real OpenSSH client: the proof that it speaks SSH.
final class OpenSSHClientTests: XCTestCase {
    var server: TestServer!

    override func setUpWithError() throws {
        guard commandExists("ssh"), commandExists("sshpass") else { throw XCTSkip("needs ssh and sshpass") }
    }

    override func tearDown() {
        server?.shutdown()
        server = nil
    }

    private func start(rekeyBytes: UInt64 = 1 << 30, authorizedKeys: [SSHPublicKey] = []) throws {
        server = try TestServer(settings: try TestServer.settings(rekeyBytes: rekeyBytes), authorizedKeys: authorizedKeys)
    }

    private func ssh(_ command: String, options: String = "") -> String {
        // OpenSSH takes the first value of an option, so the caller's options go first.
        "sshpass -p secret ssh \(options) -p \(server.port) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            + "-o LogLevel=ERROR -o PubkeyAuthentication=no -o PreferredAuthentications=password -o BatchMode=no "
            + "-T alice@127.0.0.1 '\(command)'"
    }

    func testExitStatus() throws {
        try start()
        let result = try runShell(ssh("exit 3"))
        XCTAssertEqual(result.status, 3, result.stderr)
    }

    func testEchoWithStdinEOF() throws {
        try start()
        let result = try runShell("printf 'hello engine' | " + ssh("echo"))
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout, "hello engine")
    }

    func testStderrIsExtendedData() throws {
        try start()
        let result = try runShell(ssh("stderr oops") + " 2>err.txt; cat err.txt")
        XCTAssertEqual(result.stdout, "oops")
    }

    func testWrongPasswordIsRefused() throws {
        try start()
        let result = try runShell(ssh("exit 0").replacingOccurrences(of: "-p secret", with: "-p wrong") + " -o NumberOfPasswordPrompts=2")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("Permission denied"), result.stderr)
    }

    func testPublicKeyAuthentication() throws {
        for (type, hostKeyAlgorithms) in [("ed25519", "ssh-ed25519"), ("ecdsa", "ecdsa-sha2-nistp256"), ("rsa", "rsa-sha2-512")] {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent("engine-key-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: directory) }
            let keyPath = directory.appendingPathComponent("id").path
            let generated = try runShell("ssh-keygen -q -t \(type) -N '' -f \(keyPath) && cat \(keyPath).pub")
            XCTAssertEqual(generated.status, 0, generated.stderr)
            let publicKey = try SSHPublicKey(authorizedKeysText: generated.stdout.trimmingCharacters(in: .whitespacesAndNewlines))
            server?.shutdown()
            try start(authorizedKeys: [publicKey])
            let result = try runShell(
                "ssh -p \(server.port) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
                    + "-o BatchMode=yes -o IdentitiesOnly=yes -i \(keyPath) -o HostKeyAlgorithms=\(hostKeyAlgorithms) "
                    + "-T alice@127.0.0.1 'exit 7'")
            XCTAssertEqual(result.status, 7, "\(type): \(result.stderr)")
        }
    }

    func testUnknownPublicKeyFallsThroughToFailure() throws {
        try start()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("engine-key-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let keyPath = directory.appendingPathComponent("id").path
        _ = try runShell("ssh-keygen -q -t ed25519 -N '' -f \(keyPath)")
        let result = try runShell(
            "ssh -p \(server.port) -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
                + "-o BatchMode=yes -o IdentitiesOnly=yes -i \(keyPath) -T alice@127.0.0.1 'exit 0'")
        XCTAssertEqual(result.status, 255)
        XCTAssertTrue(result.stderr.contains("Permission denied"), result.stderr)
    }

    /// 64 MiB through `echo` both ways at once; the hashes must match exactly.
    /// Returns how many KEXINITs the client sent and received (its debug log says so).
    @discardableResult
    private func bulkEcho(options: String = "", megabytes: Int = 64) throws -> (sent: Int, received: Int) {
        let result = try runShell(
            """
            set -e
            head -c \(megabytes << 20) /dev/urandom > in.bin
            \(ssh("echo", options: options + " -o LogLevel=DEBUG1")) < in.bin > out.bin 2>log.txt
            sha256sum < in.bin
            sha256sum < out.bin
            echo sent $(grep -c 'SSH2_MSG_KEXINIT sent' log.txt)
            echo received $(grep -c 'SSH2_MSG_KEXINIT received' log.txt)
            """, timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 4, result.stdout)
        XCTAssertEqual(lines.first, lines.dropFirst().first, "bytes lost or changed")
        let sent = Int(lines.dropFirst(2).first?.split(separator: " ").last ?? "") ?? -1
        let received = Int(lines.last?.split(separator: " ").last ?? "") ?? -1
        return (sent, received)
    }

    func testBulkEcho64MiB() throws {
        try start()
        try bulkEcho()
    }

    func testBulkEchoWithClientRekeyEveryMiB() throws {
        try start()
        let kexinits = try bulkEcho(options: "-o RekeyLimit=1M")
        XCTAssertGreaterThan(kexinits.sent, 30, "the client rekeyed every MiB")
    }

    func testBulkEchoWithServerRekeyEveryMiB() throws {
        try start(rekeyBytes: 1 << 20)
        let kexinits = try bulkEcho()
        XCTAssertGreaterThan(kexinits.received, 30, "the server rekeyed every MiB")
    }

    /// Both sides rekey every MiB, so KEXINITs cross on the wire.
    func testBulkEchoWithBothSidesRekeying() throws {
        try start(rekeyBytes: 1 << 20)
        let kexinits = try bulkEcho(options: "-o RekeyLimit=1M")
        XCTAssertGreaterThan(kexinits.sent, 30)
        XCTAssertGreaterThan(kexinits.received, 30)
    }

    func testUploadSHA256AndDownloadPattern() throws {
        try start(rekeyBytes: 4 << 20)
        let upload = try runShell(
            """
            set -e
            head -c \(64 << 20) /dev/urandom > in.bin
            \(ssh("sha256")) < in.bin
            sha256sum < in.bin | cut -d" " -f1
            """, timeout: 300)
        XCTAssertEqual(upload.status, 0, upload.stderr)
        let lines = upload.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 2, upload.stdout)
        XCTAssertEqual(lines.first, lines.last)

        let blocks = 1024  // 64 MiB
        let download = try runShell(ssh("write \(blocks)") + " | sha256sum | cut -d' ' -f1", timeout: 300)
        XCTAssertEqual(download.status, 0, download.stderr)
        let expected = sha256Hex(SessionBehaviour.pattern(blocks: blocks))
        XCTAssertEqual(download.stdout.trimmingCharacters(in: .whitespacesAndNewlines), expected)
    }

    /// Every kex, cipher and MAC the client and the engine share, each with a small echo.
    func testEachAlgorithm() throws {
        try start()
        let clientKex = Set(try runShell("ssh -Q kex").stdout.split(separator: "\n").map(String.init))
        let clientCiphers = Set(try runShell("ssh -Q cipher").stdout.split(separator: "\n").map(String.init))
        let clientMACs = Set(try runShell("ssh -Q mac").stdout.split(separator: "\n").map(String.init))
        let settings = try TestServer.settings()
        var combinations: [String] = []
        for kex in settings.kex where clientKex.contains(kex) {
            combinations.append("-o KexAlgorithms=\(kex) -o Ciphers=aes128-ctr -o MACs=hmac-sha2-256")
        }
        for cipher in settings.ciphers where clientCiphers.contains(cipher) {
            combinations.append("-o KexAlgorithms=curve25519-sha256 -o Ciphers=\(cipher) -o MACs=hmac-sha2-256-etm@openssh.com")
        }
        for mac in settings.macs where clientMACs.contains(mac) {
            combinations.append("-o KexAlgorithms=curve25519-sha256 -o Ciphers=aes256-ctr -o MACs=\(mac)")
        }
        for hostKey in settings.hostKeyAlgorithms {
            combinations.append("-o HostKeyAlgorithms=\(hostKey)")
        }
        XCTAssertGreaterThan(combinations.count, 20)
        for options in combinations {
            let result = try runShell(
                """
                set -e
                head -c 300000 /dev/urandom > in.bin
                \(ssh("echo", options: options + " -o RekeyLimit=64K")) < in.bin > out.bin
                cmp in.bin out.bin
                """)
            XCTAssertEqual(result.status, 0, "\(options): \(result.stderr)")
        }
    }
}
