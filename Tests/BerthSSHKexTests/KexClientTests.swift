@testable import BerthSSHKex
import BerthSSHWire
import BerthTestSupport
import Crypto
import NIOCore
import XCTest

/// The client machines against the server machines (which KexExchangeTests checks against an
/// independent python implementation): both must reach the same H and K, and the server's
/// signature over H must verify with the host key blob the client was sent.
final class KexClientTests: XCTestCase {
    private func clientContext(_ server: SSHKexContext) -> SSHClientKexContext {
        SSHClientKexContext(
            clientVersion: server.clientVersion, serverVersion: server.serverVersion,
            clientKexInit: server.clientKexInit, serverKexInit: server.serverKexInit)
    }

    /// Runs client and server to the end; returns both outputs.
    private func run(_ name: String) throws -> (client: SSHClientKexOutput, server: SSHKexOutput, signer: TestEd25519Signer) {
        let signer = TestEd25519Signer()
        let context = makeContext(signer: signer)
        var server = try SSHKexAlgorithms.makeServer(name: name, context: context)
        var client = try SSHKexAlgorithms.makeClient(name: name, context: clientContext(context))
        var toServer = try client.start()
        var serverOutput: SSHKexOutput?
        var clientOutput: SSHClientKexOutput?
        var rounds = 0
        while clientOutput == nil {
            rounds += 1
            XCTAssertLessThan(rounds, 4, "the exchange does not finish")
            var toClient: [ByteBuffer] = []
            for message in toServer {
                let (replies, done) = try server.receive(message)
                toClient += replies
                if let done { serverOutput = done }
            }
            toServer = []
            for message in toClient {
                let (replies, done) = try client.receive(message)
                toServer += replies
                if let done { clientOutput = done }
            }
        }
        let clientResult = try XCTUnwrap(clientOutput)
        let serverResult = try XCTUnwrap(serverOutput)
        return (clientResult, serverResult, signer)
    }

    func testEveryAlgorithmAgreesWithTheServer() throws {
        for name in SSHKexAlgorithms.supported where name != "diffie-hellman-group18-sha512" {
            let (client, server, signer) = try run(name)
            XCTAssertEqual(client.output.exchangeHash, server.exchangeHash, "H for \(name)")
            XCTAssertEqual(client.output.sharedSecret, server.sharedSecret, "K for \(name)")
            XCTAssertEqual(client.hostKeyBlob, signer.publicKeyBlob, name)
            var signature = ByteBuffer(bytes: client.signature)
            XCTAssertEqual(signature.readSSHText(), "ssh-ed25519", name)
            let raw = try XCTUnwrap(signature.readSSHStringBytes())
            XCTAssertTrue(signer.key.publicKey.isValidSignature(raw, for: client.output.exchangeHash), "signature over H for \(name)")
        }
    }

    func testGroup18() throws {
        let (client, server, _) = try run("diffie-hellman-group18-sha512")
        XCTAssertEqual(client.output.exchangeHash, server.exchangeHash)
    }

    /// The client checks the server's values as the server checks the client's.
    func testBadServerValuesAreRefused() throws {
        func reply(_ value: [UInt8], number: UInt8 = 31, mpint: Bool = false) -> ByteBuffer {
            var message = ByteBuffer()
            message.writeSSHUInt8(number)
            message.writeSSHString(TestEd25519Signer().publicKeyBlob)
            if mpint { message.writeSSHMPInt(unsignedBigEndian: value) } else { message.writeSSHString(value) }
            message.writeSSHString([0, 0, 0, 1, 0x41])
            return message
        }
        let context = clientContext(makeContext())
        func started(_ name: String) throws -> any SSHClientKeyExchange {
            var kex = try SSHKexAlgorithms.makeClient(name: name, context: context)
            _ = try kex.start()
            return kex
        }
        var x25519 = try started("curve25519-sha256")
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try x25519.receive(reply([UInt8](repeating: 0, count: 32))) }
        var short = try started("curve25519-sha256")
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try short.receive(reply([1, 2, 3])) }
        var p256 = try started("ecdh-sha2-nistp256")
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try p256.receive(reply([4] + [UInt8](repeating: 7, count: 64))) }
        var hybrid = try started("mlkem768x25519-sha256")
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try hybrid.receive(reply([UInt8](repeating: 1, count: 100))) }
        for f: [UInt8] in [[1], [0], SSHDHGroup.modp2048.primeBytes] {
            var dh = try started("diffie-hellman-group14-sha256")
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try dh.receive(reply(f, mpint: true)) }
        }
        var truncated = try started("curve25519-sha256")
        assertKexError("SSH_KEX_MALFORMED_MESSAGE") { try truncated.receive(ByteBuffer(bytes: [31, 0, 0, 0, 9, 1])) }
        var wrongNumber = try started("curve25519-sha256")
        assertKexError("SSH_KEX_UNEXPECTED_MESSAGE") { try wrongNumber.receive(reply([UInt8](repeating: 9, count: 32), number: 33)) }
        // Group exchange: a group smaller than 2048 bits is refused before any arithmetic.
        var gex = try started("diffie-hellman-group-exchange-sha256")
        var group = ByteBuffer()
        group.writeSSHUInt8(31)
        group.writeSSHMPInt(unsignedBigEndian: SSHDHGroup.oakley2.primeBytes)
        group.writeSSHMPInt(unsignedBigEndian: [2])
        assertKexError("SSH_KEX_GEX_OUT_OF_RANGE") { try gex.receive(group) }
        var badGenerator = try started("diffie-hellman-group-exchange-sha256")
        var group2 = ByteBuffer()
        group2.writeSSHUInt8(31)
        group2.writeSSHMPInt(unsignedBigEndian: SSHDHGroup.modp2048.primeBytes)
        group2.writeSSHMPInt(unsignedBigEndian: [1])
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try badGenerator.receive(group2) }
    }

    /// Random and mutated server replies: refused with SSHProtocolError, never a crash.
    func testFuzzClientReceive() throws {
        var generator = SeededGenerator(seed: 0xC11E_47)
        for name in SSHKexAlgorithms.supported where !name.contains("group18") && !name.contains("group16") {
            for _ in 0..<60 {
                let signer = TestEd25519Signer()
                let context = makeContext(signer: signer)
                var server = try SSHKexAlgorithms.makeServer(name: name, context: context)
                var client = try SSHKexAlgorithms.makeClient(name: name, context: clientContext(context))
                var replies = try client.start().flatMap { try server.receive($0).replies }
                if name.contains("group-exchange") {
                    // Half the time mutate the GROUP, else the REPLY after a good GROUP.
                    if Bool.random(using: &generator) {
                        replies = try replies.flatMap { try client.receive($0).replies }.flatMap { try server.receive($0).replies }
                    }
                }
                var bytes = Array(replies[0].readableBytesView)
                switch Int.random(in: 0..<4, using: &generator) {
                case 0:
                    for _ in 0..<Int.random(in: 1...4, using: &generator) {
                        bytes[Int.random(in: 0..<bytes.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator)
                    }
                case 1: bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
                case 2: bytes += generator.bytes(Int.random(in: 1...8, using: &generator))
                default: bytes = [UInt8.random(in: 28...36, using: &generator)] + generator.bytes(Int.random(in: 0...80, using: &generator))
                }
                do {
                    _ = try client.receive(ByteBuffer(bytes: bytes))
                } catch is SSHProtocolError {
                } catch {
                    XCTFail("\(name): \(error) is not an SSHProtocolError")
                }
            }
        }
    }
}
