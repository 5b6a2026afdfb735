@testable import BerthSSHKex
import BerthSSHWire
import Crypto
import NIOCore
import XCTest

/// Bad client values and misplaced messages end the exchange with a specific code and the
/// "key exchange failed" disconnect reason.
final class KexRejectionTests: XCTestCase {
    private func initMessage(_ value: [UInt8], number: UInt8 = 30) -> ByteBuffer {
        var message = ByteBuffer()
        message.writeSSHUInt8(number)
        message.writeSSHString(value)
        return message
    }

    private func receive(_ name: String, _ message: ByteBuffer, context: SSHKexContext = makeContext()) throws {
        var kex = try SSHKexAlgorithms.makeServer(name: name, context: context)
        _ = try kex.receive(message)
    }

    func testCurve25519BadValues() {
        for name in ["curve25519-sha256", "curve25519-sha256@libssh.org"] {
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([UInt8](repeating: 9, count: 31))) }
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([UInt8](repeating: 9, count: 33))) }
            // Low-order points (u = 0 and u = 1) make the shared secret all zeros.
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([UInt8](repeating: 0, count: 32))) }
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([1] + [UInt8](repeating: 0, count: 31))) }
        }
    }

    func testNISTCurveBadValues() throws {
        let valid: [(String, [UInt8])] = [
            ("ecdh-sha2-nistp256", Array(P256.KeyAgreement.PrivateKey().publicKey.x963Representation)),
            ("ecdh-sha2-nistp384", Array(P384.KeyAgreement.PrivateKey().publicKey.x963Representation)),
            ("ecdh-sha2-nistp521", Array(P521.KeyAgreement.PrivateKey().publicKey.x963Representation)),
        ]
        for (name, point) in valid {
            XCTAssertNoThrow(try receive(name, initMessage(point)), name)
            var offCurve = point
            offCurve[offCurve.count - 1] ^= 1  // y no longer matches x
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(offCurve)) }
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(Array(point.dropLast()))) }
            // Compressed form and the point at infinity are not what RFC 5656 clients send.
            let compressed = [2 | (point.last! & 1)] + point[1...((point.count - 1) / 2)]
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(compressed)) }
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([0])) }
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([])) }
        }
    }

    func testHybridBadValues() throws {
        let name = "mlkem768x25519-sha256"
        let kem = try MLKEM768.PrivateKey()
        let x25519 = Curve25519.KeyAgreement.PrivateKey()
        let goodKEM = Array(kem.publicKey.rawRepresentation)
        let goodX = Array(x25519.publicKey.rawRepresentation)
        XCTAssertNoThrow(try receive(name, initMessage(goodKEM + goodX)))
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(goodKEM)) }
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(goodKEM + goodX + [0])) }
        // 12-bit coefficients of 0xFFF are not reduced mod q = 3329: FIPS 203's modulus check fails.
        var unreduced = goodKEM
        for index in 0..<1152 { unreduced[index] = 0xFF }
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(unreduced + goodX)) }
        // A valid KEM key does not excuse a low-order X25519 point.
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(goodKEM + [UInt8](repeating: 0, count: 32))) }
    }

    func testDiffieHellmanOutOfRange() throws {
        let p = SSHDHGroup.modp2048.primeBytes
        var pMinusOne = p
        pMinusOne[pMinusOne.count - 1] -= 1  // p ends in 0xff, no borrow
        for name in ["diffie-hellman-group14-sha256", "diffie-hellman-group14-sha1"] {
            for bad in [[], [1], SSHMPInt.encodeUnsigned(pMinusOne), SSHMPInt.encodeUnsigned(p)] {
                assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage(bad)) }
            }
            // Longer than the modulus.
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([0x01] + [UInt8](repeating: 0, count: 256))) }
            // Negative, and a needless leading zero (would change the hashed encoding).
            assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try receive(name, initMessage([0x80, 0x01])) }
            assertKexError("SSH_KEX_MALFORMED_MESSAGE") { try receive(name, initMessage([0x00, 0x05])) }
            XCTAssertNoThrow(try receive(name, initMessage([2])))
        }
    }

    func testFraming() {
        for name in SSHKexAlgorithms.supported where !name.contains("group-exchange") {
            // Wrong message number, missing value, trailing bytes.
            assertKexError("SSH_KEX_UNEXPECTED_MESSAGE") { try receive(name, initMessage([2], number: 31)) }
            assertKexError("SSH_KEX_UNEXPECTED_MESSAGE") { try receive(name, ByteBuffer()) }
            assertKexError("SSH_KEX_MALFORMED_MESSAGE") { try receive(name, ByteBuffer(bytes: [30, 0, 0, 0, 5, 1])) }
            var trailing = initMessage([2])
            trailing.writeSSHUInt8(0)
            assertKexError("SSH_KEX_MALFORMED_MESSAGE") { try receive(name, trailing) }
        }
    }

    func testGroupExchangeRequests() throws {
        let name = "diffie-hellman-group-exchange-sha256"
        func request(_ min: UInt32, _ n: UInt32, _ max: UInt32) -> ByteBuffer {
            var message = ByteBuffer()
            message.writeSSHUInt8(34)
            message.writeSSHUInt32(min)
            message.writeSSHUInt32(n)
            message.writeSSHUInt32(max)
            return message
        }
        assertKexError("SSH_KEX_GEX_OUT_OF_RANGE") { try receive(name, request(4096, 2048, 8192)) }
        assertKexError("SSH_KEX_GEX_OUT_OF_RANGE") { try receive(name, request(2048, 8192, 4096)) }
        assertKexError("SSH_KEX_GEX_NO_GROUP") { try receive(name, request(1024, 1024, 1536)) }
        assertKexError("SSH_KEX_GEX_NO_GROUP") { try receive(name, request(9000, 9000, 10000)) }
        assertKexError("SSH_KEX_MALFORMED_MESSAGE") { try receive(name, ByteBuffer(bytes: [34, 0, 0, 8, 0])) }
        // INIT before the request.
        assertKexError("SSH_KEX_UNEXPECTED_MESSAGE") { try receive(name, initMessage([2], number: 32)) }

        var kex = try SSHKexAlgorithms.makeServer(name: name, context: makeContext())
        let (replies, done) = try kex.receive(request(2048, 2048, 8192))
        XCTAssertNil(done)
        XCTAssertEqual(replies.count, 1)
        // A second request, or an INIT with the old number, is out of place now.
        assertKexError("SSH_KEX_UNEXPECTED_MESSAGE") { try kex.receive(request(2048, 2048, 8192)) }
        assertKexError("SSH_KEX_UNEXPECTED_MESSAGE") { try kex.receive(initMessage([2], number: 30)) }
        assertKexError("SSH_KEX_BAD_PUBLIC_VALUE") { try kex.receive(initMessage([1], number: 32)) }
        let (finalReplies, output) = try kex.receive(initMessage([2], number: 32))
        XCTAssertNotNil(output)
        XCTAssertEqual(finalReplies.first?.getInteger(at: 0, as: UInt8.self), 33)
    }

    func testGroupChoice() {
        XCTAssertEqual(SSHGroupExchange.chooseGroup(min: 2048, preferred: 2048, max: 8192), .modp3072)
        XCTAssertEqual(SSHGroupExchange.chooseGroup(min: 1024, preferred: 2048, max: 2048), nil)
        XCTAssertEqual(SSHGroupExchange.chooseGroup(min: 2048, preferred: 2049, max: 8192), .modp3072)
        XCTAssertEqual(SSHGroupExchange.chooseGroup(min: 2048, preferred: 7000, max: 8192), .modp8192)
        XCTAssertEqual(SSHGroupExchange.chooseGroup(min: 2048, preferred: 7000, max: 6500), .modp6144)
        XCTAssertEqual(SSHGroupExchange.chooseGroup(min: 0, preferred: 100_000, max: UInt32.max), .modp8192)
        XCTAssertEqual(SSHGroupExchange.chooseGroup(min: 3000, preferred: 3000, max: 3071), nil)
    }

    func testSignerFailureIsReported() {
        var context = makeContext()
        context.hostKeyAlgorithm = "rsa-sha2-512"  // the Ed25519 test key cannot do this
        assertKexError("SSH_KEX_SIGN_FAILED") {
            try receive("curve25519-sha256", initMessage(Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)), context: context)
        }
    }
}
