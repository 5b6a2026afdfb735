import BerthSSHKex
import BerthSSHWire
import Crypto
import Foundation
import NIOCore
import XCTest
import BerthTestSupport

/// A host key for the tests: Ed25519 from swift-crypto, blobs as RFC 8709 defines them.
struct TestEd25519Signer: SSHHostKeySigner {
    let key = Curve25519.Signing.PrivateKey()

    var publicKeyBlob: [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeSSHText("ssh-ed25519")
        buffer.writeSSHString(Array(key.publicKey.rawRepresentation))
        return Array(buffer.readableBytesView)
    }

    var signatureAlgorithms: [String] { ["ssh-ed25519"] }

    struct WrongAlgorithm: Error {}

    func sign(_ data: [UInt8], algorithm: String) throws -> [UInt8] {
        guard algorithm == "ssh-ed25519" else { throw WrongAlgorithm() }
        var buffer = ByteBuffer()
        buffer.writeSSHText("ssh-ed25519")
        buffer.writeSSHString(Array(try key.signature(for: data)))
        return Array(buffer.readableBytesView)
    }
}

func randomBytes<G: RandomNumberGenerator>(_ count: Int, using generator: inout G) -> [UInt8] {
    (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
}

func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

func unhex(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    var index = text.startIndex
    while index < text.endIndex {
        let next = text.index(index, offsetBy: 2)
        out.append(UInt8(text[index..<next], radix: 16)!)
        index = next
    }
    return out
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

func makeContext(signer: TestEd25519Signer = TestEd25519Signer()) -> SSHKexContext {
    var generator = SystemRandomNumberGenerator()
    return SSHKexContext(
        clientVersion: Array("SSH-2.0-OpenSSH_9.9".utf8),
        serverVersion: Array("SSH-2.0-Berth".utf8),
        clientKexInit: [20] + randomBytes(150, using: &generator),
        serverKexInit: [20] + randomBytes(120, using: &generator),
        hostKey: signer,
        hostKeyAlgorithm: "ssh-ed25519")
}

/// The python client process (PythonKexClient.swift), one JSON line per request.
final class PythonKexPeer {
    private let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var pending: [UInt8] = []

    /// Skips the test when python3 or its `cryptography` package (with ML-KEM, version 46+) is missing.
    init() throws {
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["python3", "-c", "from cryptography.hazmat.primitives.asymmetric import mlkem"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        do { try probe.run() } catch { throw XCTSkip("python3 not found") }
        probe.waitUntilExit()
        guard probe.terminationStatus == 0 else {
            throw XCTSkip("python3 `cryptography` with ML-KEM is not installed (pip install cryptography)")
        }
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", pythonKexClient]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    deinit {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    func call(_ request: [String: Any]) throws -> [String: Any] {
        var line = try JSONSerialization.data(withJSONObject: request)
        line.append(0x0A)
        try input.fileHandleForWriting.write(contentsOf: line)
        while !pending.contains(0x0A) {
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw PeerError(message: "python client exited") }
            pending.append(contentsOf: chunk)
        }
        let end = pending.firstIndex(of: 0x0A)!
        let answerLine = Data(pending[..<end])
        pending.removeSubrange(...end)
        guard let answer = try JSONSerialization.jsonObject(with: answerLine) as? [String: Any] else {
            throw PeerError(message: "python client answered \(String(decoding: answerLine, as: UTF8.self))")
        }
        if let error = answer["error"] as? String { throw PeerError(message: "python client: \(error)") }
        return answer
    }

    struct PeerError: Error, CustomStringConvertible { var message: String; var description: String { message } }
}

/// Asserts that `body` throws an SSHProtocolError with `code` and the kex-failed disconnect reason.
func assertKexError(_ code: String, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Any) {
    do {
        _ = try body()
        XCTFail("expected \(code), got no error", file: file, line: line)
    } catch let error as SSHProtocolError {
        XCTAssertEqual(error.code, code, "\(error)", file: file, line: line)
        XCTAssertEqual(error.disconnectReason, SSHDisconnectReason.keyExchangeFailed, file: file, line: line)
    } catch {
        XCTFail("expected SSHProtocolError \(code), got \(error)", file: file, line: line)
    }
}
