@testable import BerthSSHKex
import BerthSSHWire
import Crypto
import NIOCore
import XCTest
import BerthTestSupport

/// Random and mutated client messages for every algorithm: the exchanges may succeed or throw
/// SSHProtocolError, never crash or throw anything else. Seeded, so failures reproduce.
final class KexFuzzTests: XCTestCase {
    /// A well-formed first message for the algorithm, to mutate.
    private func validFirstMessage(_ name: String, using generator: inout SeededGenerator) throws -> [UInt8] {
        var message = ByteBuffer()
        if name.contains("group-exchange") {
            message.writeSSHUInt8(34)
            message.writeSSHUInt32(2048)
            message.writeSSHUInt32(2048)
            message.writeSSHUInt32(8192)
            return Array(message.readableBytesView)
        }
        message.writeSSHUInt8(30)
        switch name {
        case "mlkem768x25519-sha256":
            message.writeSSHString(Array(try MLKEM768.PrivateKey().publicKey.rawRepresentation) + randomBytes(32, using: &generator))
        case let name where name.hasPrefix("curve25519"):
            message.writeSSHString(randomBytes(32, using: &generator))
        case "ecdh-sha2-nistp256":
            message.writeSSHString(Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation))
        case "ecdh-sha2-nistp384":
            message.writeSSHString(Array(P384.KeyAgreement.PrivateKey().publicKey.x963Representation))
        case "ecdh-sha2-nistp521":
            message.writeSSHString(Array(P521.KeyAgreement.PrivateKey().publicKey.x963Representation))
        default:
            message.writeSSHMPInt(unsignedBigEndian: randomBytes(64, using: &generator))
        }
        return Array(message.readableBytesView)
    }

    private func mutate(_ bytes: [UInt8], using generator: inout SeededGenerator) -> [UInt8] {
        var bytes = bytes
        switch Int.random(in: 0..<5, using: &generator) {
        case 0 where !bytes.isEmpty:
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
            }
        case 1:
            bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &generator)))
        case 2:
            bytes += randomBytes(Int.random(in: 1...8, using: &generator), using: &generator)
        case 3 where bytes.count > 4:
            // Length fields are the likeliest to go wrong: overwrite the first string's length.
            let value = [UInt32(0), 1, 0x7fff_ffff, UInt32.max, UInt32(bytes.count)].randomElement(using: &generator)!
            withUnsafeBytes(of: value.bigEndian) { bytes.replaceSubrange(1..<5, with: $0) }
        default:
            bytes = [UInt8.random(in: 28...36, using: &generator)] + randomBytes(Int.random(in: 0...80, using: &generator), using: &generator)
        }
        return bytes
    }

    func testFuzzReceive() throws {
        var generator = SeededGenerator(seed: 0x4B45_5846_555A)
        let context = makeContext()
        for name in SSHKexAlgorithms.supported {
            // The big groups cost milliseconds per accepted value; fewer rounds keep the run short.
            let rounds = name.contains("group18") || name.contains("group16") ? 40 : 150
            for _ in 0..<rounds {
                var kex = try SSHKexAlgorithms.makeServer(name: name, context: context)
                let first = mutate(try validFirstMessage(name, using: &generator), using: &generator)
                var messages = [first]
                // A second message: exercises group exchange's INIT and every algorithm's "already done".
                var second = ByteBuffer()
                second.writeSSHUInt8(UInt8.random(in: 30...34, using: &generator))
                second.writeSSHMPInt(unsignedBigEndian: randomBytes(Int.random(in: 0...300, using: &generator), using: &generator))
                messages.append(mutate(Array(second.readableBytesView), using: &generator))
                for message in messages {
                    do {
                        _ = try kex.receive(ByteBuffer(bytes: message))
                    } catch let error as SSHProtocolError {
                        XCTAssertTrue(error.code.hasPrefix("SSH_KEX_"), "\(name): \(error)")
                        XCTAssertEqual(error.disconnectReason, SSHDisconnectReason.keyExchangeFailed)
                    } catch {
                        XCTFail("\(name): unexpected error type \(error)")
                    }
                }
            }
        }
    }
}
