import BerthSSHWire
import NIOCore
import XCTest

@testable import BerthSSHEngine
import BerthTestSupport

/// Every parser gets random and mutated real input; only thrown SSHProtocolErrors are allowed.
final class FuzzTests: XCTestCase {
    private static func samples() -> [ByteBuffer] {
        var samples: [ByteBuffer] = [
            SSHKexInit(
                cookie: Array(repeating: 1, count: 16), kexAlgorithms: ["curve25519-sha256", "ext-info-c"],
                serverHostKeyAlgorithms: ["ssh-ed25519"], ciphers: ["aes128-ctr"], macs: ["hmac-sha2-256"]
            ).payload,
            SSHMessageWriter.disconnect(reason: 11, description: "bye"),
            SSHMessageWriter.unimplemented(sequenceNumber: 3),
            SSHMessageWriter.serviceAccept("ssh-userauth"),
            SSHMessageWriter.extInfo([("server-sig-algs", "ssh-ed25519")]),
            SSHMessageWriter.globalRequest(type: "tcpip-forward", wantReply: true, data: ByteBuffer(bytes: [0, 0, 0, 0, 0, 0, 0, 80])),
            SSHMessageWriter.requestSuccess(data: ByteBuffer(bytes: [1])),
            SSHMessageWriter.channelOpen(type: "session", sender: 1, window: 100, maxPacket: 100, data: ByteBuffer()),
            SSHMessageWriter.channelOpenConfirmation(recipient: 1, sender: 2, window: 3, maxPacket: 4),
            SSHMessageWriter.channelOpenFailure(recipient: 1, reason: 2, description: "x"),
            SSHMessageWriter.channelWindowAdjust(recipient: 1, bytes: 100),
            SSHMessageWriter.channelRequest(recipient: 1, type: "exec", wantReply: true, data: ByteBuffer(bytes: [0, 0, 0, 2, 108, 115])),
        ]
        var data = ByteBuffer()
        SSHMessageWriter.channelData(recipient: 1, extendedType: nil, data: ByteBuffer(string: "hello"), into: &data)
        samples.append(data)
        var extended = ByteBuffer()
        SSHMessageWriter.channelData(recipient: 1, extendedType: 1, data: ByteBuffer(string: "err"), into: &extended)
        samples.append(extended)
        for (method, body) in [
            ("none", [UInt8]()), ("password", [0, 0, 0, 0, 3, 97, 98, 99]),
            ("publickey", [0, 0, 0, 0, 11] + Array("ssh-ed25519".utf8) + [0, 0, 0, 0]),
            ("keyboard-interactive", [0, 0, 0, 0, 0, 0, 0, 0]),
        ] {
            var b = ByteBuffer()
            b.writeSSHUInt8(SSHMessageNumber.userauthRequest)
            b.writeSSHText("user")
            b.writeSSHText("ssh-connection")
            b.writeSSHText(method)
            b.writeBytes(body)
            samples.append(b)
        }
        var directTCPIP = ByteBuffer()
        directTCPIP.writeSSHText("host")
        directTCPIP.writeSSHUInt32(22)
        directTCPIP.writeSSHText("orig")
        directTCPIP.writeSSHUInt32(1)
        samples.append(SSHMessageWriter.channelOpen(type: "direct-tcpip", sender: 1, window: 1, maxPacket: 1, data: directTCPIP))
        return samples
    }

    private static func mutate(_ input: [UInt8], _ rng: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...4, using: &rng) {
            switch Int.random(in: 0..<4, using: &rng) {
            case 0 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1 where !bytes.isEmpty:
                bytes.removeSubrange(Int.random(in: 0..<bytes.count, using: &rng)...)
            case 2:
                bytes.insert(
                    contentsOf: (0..<Int.random(in: 1...8, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) },
                    at: Int.random(in: 0...bytes.count, using: &rng))
            default:
                // Length fields are where parsers break: make one huge.
                if bytes.count >= 5 {
                    let at = Int.random(in: 1..<(bytes.count - 3), using: &rng)
                    bytes.replaceSubrange(at..<(at + 4), with: [0xFF, 0xFF, 0xFF, UInt8.random(in: 0...255, using: &rng)])
                }
            }
        }
        return bytes
    }

    func testMessageParserSurvivesRandomAndMutatedInput() {
        var rng = SeededGenerator(state: 0x5EED_0001)
        let samples = Self.samples().map { Array($0.readableBytesView) }
        var parsed = 0, rejected = 0
        for round in 0..<20_000 {
            let input: [UInt8]
            if round % 4 == 0 {
                input = (0..<Int.random(in: 0...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                input = Self.mutate(samples[round % samples.count], &rng)
            }
            do {
                _ = try SSHMessage.parse(ByteBuffer(bytes: input))
                parsed += 1
            } catch is SSHProtocolError {
                rejected += 1
            } catch {
                XCTFail("unexpected error type \(error)")
            }
        }
        XCTAssertGreaterThan(parsed, 1000)
        XCTAssertGreaterThan(rejected, 1000)
    }

    func testEverySampleParsesAndEveryTruncationIsRejectedOrShorter() throws {
        for sample in Self.samples() {
            XCTAssertNoThrow(try SSHMessage.parse(sample))
        }
        // A truncated KEXINIT never parses.
        let kexInit = Self.samples()[0]
        for length in 0..<kexInit.readableBytes {
            XCTAssertThrowsError(try SSHMessage.parse(kexInit.getSlice(at: 0, length: length)!))
        }
    }

    func testVersionReaderSurvivesRandomInput() {
        var rng = SeededGenerator(state: 0x5EED_0002)
        let prefixes = ["SSH-2.0-", "SSH-1.99-", "SSH-", "", "junk\r\n"]
        for _ in 0..<5_000 {
            var reader = SSHVersionReader()
            var text = Array(prefixes[Int.random(in: 0..<prefixes.count, using: &rng)].utf8)
            text += (0..<Int.random(in: 0...400, using: &rng)).map { _ in
                Bool.random(using: &rng) ? UInt8(ascii: "\n") : UInt8.random(in: 0...255, using: &rng)
            }
            var buffer = ByteBuffer(bytes: text)
            do {
                if let line = try reader.read(from: &buffer) {
                    XCTAssertTrue(line.hasPrefix("SSH-2.0-") || line.hasPrefix("SSH-1.99-"))
                    XCTAssertLessThanOrEqual(line.utf8.count, 255)
                }
            } catch is SSHProtocolError {
            } catch {
                XCTFail("unexpected error type \(error)")
            }
        }
    }

    /// Mutated packets into a logged-in server with an open channel: it may disconnect, but
    /// must never crash or leave the delegate unaware.
    func testHandlerSurvivesMutatedPackets() throws {
        var rng = SeededGenerator(state: 0x5EED_0003)
        let samples = Self.samples().map { Array($0.readableBytesView) }
        for round in 0..<300 {
            let connection = try TestConnection()
            try connection.login()
            _ = try connection.openSession()
            for _ in 0..<20 where connection.isActive {
                let input = Self.mutate(samples[Int.random(in: 0..<samples.count, using: &rng)], &rng)
                guard !input.isEmpty else { continue }
                try connection.send(ByteBuffer(bytes: input))
                try connection.drain()
            }
            if !connection.isActive {
                XCTAssertEqual(connection.delegate.closedError.count, 1, "round \(round)")
            }
            connection.handler.disconnect(reason: 11, description: "done")
            XCTAssertEqual(connection.delegate.closedError.count, 1)
        }
    }
}
