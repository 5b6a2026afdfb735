@testable import BerthSSHKex
import BerthSSHWire
import Crypto
import NIOCore
import XCTest

/// Full server-side exchanges against the python client: it makes its own key pair, computes K
/// and H from the transcript on its side and verifies the host key's signature over H.
final class KexExchangeTests: XCTestCase {
    /// Runs one exchange and checks H, K, the reply's message number and the signature.
    private func exchange(
        _ name: String, gexRequest: (min: UInt32, n: UInt32, max: UInt32)? = nil, oldRequest: Bool = false,
        file: StaticString = #filePath, line: UInt = #line
    ) throws -> (bits: Int?, output: SSHKexOutput) {
        let peer = try PythonKexPeer()
        let context = makeContext()
        var kex = try SSHKexAlgorithms.makeServer(name: name, context: context)
        var request: [String: Any] = [
            "op": "start", "alg": name, "vc": hex(context.clientVersion), "vs": hex(context.serverVersion),
            "ic": hex(context.clientKexInit), "is": hex(context.serverKexInit),
        ]
        if let gexRequest { request["min"] = gexRequest.min; request["n"] = gexRequest.n; request["max"] = gexRequest.max }
        if oldRequest { request["old"] = true }
        var clientMessage = unhex(try peer.call(request)["message"] as! String)
        var bits: Int?
        if gexRequest != nil {
            let (groupReplies, none) = try kex.receive(buffer(clientMessage))
            XCTAssertNil(none, file: file, line: line)
            XCTAssertEqual(groupReplies.count, 1, file: file, line: line)
            let answer = try peer.call(["op": "group", "reply": hex(Array(groupReplies[0].readableBytesView))])
            bits = answer["bits"] as? Int
            XCTAssertEqual(answer["g"] as? Int, 2, file: file, line: line)
            clientMessage = unhex(answer["message"] as! String)
        }
        let (replies, done) = try kex.receive(buffer(clientMessage))
        let output = try XCTUnwrap(done, file: file, line: line)
        XCTAssertEqual(replies.count, 1, file: file, line: line)
        let answer = try peer.call(["op": "finish", "reply": hex(Array(replies[0].readableBytesView))])
        XCTAssertEqual(answer["number"] as? Int, gexRequest == nil ? 31 : 33, file: file, line: line)
        XCTAssertEqual(answer["signature_ok"] as? Bool, true, "host key signature over H", file: file, line: line)
        XCTAssertEqual(hex(output.exchangeHash), answer["H"] as? String, "exchange hash", file: file, line: line)
        XCTAssertEqual(hex(output.sharedSecret), answer["K"] as? String, "shared secret", file: file, line: line)
        // The exchange is over: anything further is refused.
        assertKexError("SSH_KEX_UNEXPECTED_MESSAGE", file: file, line: line) { try kex.receive(buffer(clientMessage)) }
        return (bits, output)
    }

    func testCurve25519() throws {
        let output = try exchange("curve25519-sha256").output
        XCTAssertEqual(output.hash, .sha256)
        XCTAssertEqual(output.exchangeHash.count, 32)
        _ = try exchange("curve25519-sha256@libssh.org")
    }

    func testECDHNistP256() throws { XCTAssertEqual(try exchange("ecdh-sha2-nistp256").output.exchangeHash.count, 32) }
    func testECDHNistP384() throws { XCTAssertEqual(try exchange("ecdh-sha2-nistp384").output.exchangeHash.count, 48) }
    func testECDHNistP521() throws { XCTAssertEqual(try exchange("ecdh-sha2-nistp521").output.exchangeHash.count, 64) }

    func testMLKEM768X25519() throws {
        let output = try exchange("mlkem768x25519-sha256").output
        // K is a `string` holding a SHA-256 digest, not an mpint.
        XCTAssertEqual(output.sharedSecret.prefix(4), [0, 0, 0, 32])
        XCTAssertEqual(output.sharedSecret.count, 36)
    }

    func testFixedGroups() throws {
        XCTAssertEqual(try exchange("diffie-hellman-group14-sha256").output.exchangeHash.count, 32)
        XCTAssertEqual(try exchange("diffie-hellman-group16-sha512").output.exchangeHash.count, 64)
        XCTAssertEqual(try exchange("diffie-hellman-group14-sha1").output.exchangeHash.count, 20)
        XCTAssertEqual(try exchange("diffie-hellman-group1-sha1").output.exchangeHash.count, 20)
    }

    func testGroup18() throws {
        XCTAssertEqual(try exchange("diffie-hellman-group18-sha512").output.exchangeHash.count, 64)
    }

    func testGroupExchange() throws {
        // n between two groups (the next larger one), n below 3072 (the smallest group, 3072), the
        // largest group; a client limited to 2048 bits gets no group (it has group14 instead).
        XCTAssertEqual(try exchange("diffie-hellman-group-exchange-sha256", gexRequest: (2048, 3072, 8192)).bits, 3072)
        XCTAssertEqual(try exchange("diffie-hellman-group-exchange-sha256", gexRequest: (1024, 2048, 8192)).bits, 3072)
        XCTAssertThrowsError(try exchange("diffie-hellman-group-exchange-sha1", gexRequest: (1024, 1024, 2048)))
        XCTAssertEqual(try exchange("diffie-hellman-group-exchange-sha1", gexRequest: (1024, 1024, 3072)).bits, 3072)
        XCTAssertEqual(try exchange("diffie-hellman-group-exchange-sha256", gexRequest: (2048, 5000, 6144)).bits, 6144)
        XCTAssertEqual(try exchange("diffie-hellman-group-exchange-sha256", gexRequest: (2048, 8192, 8192)).bits, 8192)
    }

    func testGroupExchangeOldRequest() throws {
        // KEX_DH_GEX_REQUEST_OLD (30, n): only n enters H (RFC 4419 §5).
        let bits = try exchange("diffie-hellman-group-exchange-sha1", gexRequest: (0, 4096, 0), oldRequest: true).bits
        XCTAssertEqual(bits, 4096)
    }

    /// The group table against the RFC formula computed by the python client.
    func testGroupPrimesMatchRFC() throws {
        let primes = try PythonKexPeer().call(["op": "primes"])
        for group in SSHDHGroup.allCases {
            XCTAssertEqual(hex(group.primeBytes), primes[String(group.bits)] as? String, "\(group)")
        }
    }

    /// Client side with swift-crypto's own ML-KEM decapsulation: both ends reach the same K.
    func testMLKEMRoundTripWithSwiftCryptoClient() throws {
        let kem = try MLKEM768.PrivateKey()
        let x25519 = Curve25519.KeyAgreement.PrivateKey()
        var message = ByteBuffer()
        message.writeSSHUInt8(30)
        message.writeSSHString(Array(kem.publicKey.rawRepresentation) + Array(x25519.publicKey.rawRepresentation))
        var kex = try SSHKexAlgorithms.makeServer(name: "mlkem768x25519-sha256", context: makeContext())
        let (replies, done) = try kex.receive(message)
        let output = try XCTUnwrap(done)
        var reply = try XCTUnwrap(replies.first)
        XCTAssertEqual(reply.readSSHUInt8(), 31)
        _ = reply.readSSHString()
        let serverValue = try XCTUnwrap(reply.readSSHStringBytes())
        XCTAssertEqual(serverValue.count, 1088 + 32)
        let kemSecret: [UInt8] = try kem.decapsulate(serverValue[..<1088]).withUnsafeBytes { Array($0) }
        let serverPublic = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: serverValue[1088...])
        let ecdhSecret: [UInt8] = try x25519.sharedSecretFromKeyAgreement(with: serverPublic).withUnsafeBytes { Array($0) }
        let expected: [UInt8] = [0, 0, 0, 32] + Array(SHA256.hash(data: kemSecret + ecdhSecret))
        XCTAssertEqual(output.sharedSecret, expected)
    }

    func testAlgorithmLists() throws {
        XCTAssertEqual(SSHKexAlgorithms.defaults.first, "mlkem768x25519-sha256")
        XCTAssertEqual(SSHKexAlgorithms.supported.prefix(SSHKexAlgorithms.defaults.count).map { $0 }, SSHKexAlgorithms.defaults)
        XCTAssertEqual(Set(SSHKexAlgorithms.supported).count, 13)
        for name in SSHKexAlgorithms.supported {
            XCTAssertNoThrow(try SSHKexAlgorithms.makeServer(name: name, context: makeContext()), name)
        }
        assertKexError("SSH_KEX_UNKNOWN_ALGORITHM") { try SSHKexAlgorithms.makeServer(name: "sntrup761x25519-sha512", context: makeContext()) }
    }
}
