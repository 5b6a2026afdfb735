import Foundation
import XCTest

@testable import BerthSSHEngine

/// The engine against paramiko, an independent client implementation (it also sends its service
/// request twice and rekeys on demand).
final class ParamikoClientTests: XCTestCase {
    var server: TestServer!

    override func setUpWithError() throws {
        guard (try? runShell("python3 -c 'import paramiko'", timeout: 30).status) == 0 else { throw XCTSkip("needs python3 with paramiko") }
    }

    override func tearDown() {
        server?.shutdown()
        server = nil
    }

    private static let script = #"""
        import hashlib, os, sys, threading
        import paramiko

        port, size, rekey_every = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        client.connect("127.0.0.1", port=port, username="alice", password="secret",
                       look_for_keys=False, allow_agent=False, timeout=30)
        transport = client.get_transport()

        channel = transport.open_session()
        channel.exec_command("exit 5")
        print("exit", channel.recv_exit_status())

        data = os.urandom(size)
        channel = transport.open_session()
        channel.exec_command("echo")
        received = bytearray()
        def reader():
            while True:
                chunk = channel.recv(1 << 20)
                if not chunk:
                    return
                received.extend(chunk)
        thread = threading.Thread(target=reader)
        thread.start()
        step = 1 << 20
        for offset in range(0, len(data), step):
            channel.sendall(data[offset:offset + step])
            if rekey_every and (offset // step) % rekey_every == rekey_every - 1:
                transport.renegotiate_keys()
        channel.shutdown_write()
        thread.join(120)
        print("status", channel.recv_exit_status())
        print("same", hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest(), len(received))
        client.close()
        """#

    private func run(size: Int, rekeyEveryMiB: Int = 0, serverRekeyBytes: UInt64 = 1 << 30) throws {
        server = try TestServer(settings: try TestServer.settings(rekeyBytes: serverRekeyBytes))
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("paramiko-\(UUID().uuidString).py")
        try Self.script.write(to: script, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: script) }
        let result = try runShell("python3 \(script.path) \(server.port) \(size) \(rekeyEveryMiB)", timeout: 300)
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(result.stdout.split(separator: "\n"), ["exit 5", "status 0", "same True \(size)"], result.stderr)
    }

    func testExecEchoAndExitStatus() throws {
        try run(size: 64 << 20)
    }

    func testClientRekeysDuringTransfer() throws {
        try run(size: 64 << 20, rekeyEveryMiB: 4)
    }

    func testServerRekeysEveryMiB() throws {
        try run(size: 64 << 20, serverRekeyBytes: 1 << 20)
    }
}
