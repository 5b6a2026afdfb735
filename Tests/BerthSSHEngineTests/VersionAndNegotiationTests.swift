import BerthSSHWire
import NIOCore
import XCTest

@testable import BerthSSHEngine

final class VersionExchangeTests: XCTestCase {
    private func read(_ text: String) throws -> (String?, ByteBuffer) {
        var reader = SSHVersionReader()
        var buffer = ByteBuffer(string: text)
        return (try reader.read(from: &buffer), buffer)
    }

    private func assertRejected(_ text: String, code: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try read(text), file: file, line: line) { error in
            XCTAssertEqual((error as? SSHProtocolError)?.code, code, file: file, line: line)
            XCTAssertEqual((error as? SSHProtocolError)?.disconnectReason, SSHDisconnectReason.protocolVersionNotSupported, file: file, line: line)
        }
    }

    func testVersionLineWithCRLFAndFollowingBytes() throws {
        let (version, rest) = try read("SSH-2.0-OpenSSH_9.6 Ubuntu\r\n\u{0}\u{0}\u{0}\u{1}")
        XCTAssertEqual(version, "SSH-2.0-OpenSSH_9.6 Ubuntu")
        XCTAssertEqual(rest.readableBytes, 4, "bytes after the line stay for the packet layer")
    }

    func testBareLFAndSSH199Accepted() throws {
        XCTAssertEqual(try read("SSH-1.99-old\n").0, "SSH-1.99-old")
    }

    func testLinesBeforeTheVersionAreSkipped() throws {
        XCTAssertEqual(try read("hello\r\nsecond line\nSSH-2.0-x\r\n").0, "SSH-2.0-x")
    }

    func testIncompleteLineWaits() throws {
        var reader = SSHVersionReader()
        var buffer = ByteBuffer(string: "SSH-2.0-Op")
        XCTAssertNil(try reader.read(from: &buffer))
        buffer.writeString("enSSH\r\n")
        XCTAssertEqual(try reader.read(from: &buffer), "SSH-2.0-OpenSSH")
    }

    func testRejectsOtherVersions() {
        assertRejected("SSH-1.5-old\r\n", code: "SSH_VERSION_UNSUPPORTED")
        assertRejected("SSH-3.0-future\r\n", code: "SSH_VERSION_UNSUPPORTED")
        assertRejected("SSH-2.0\r\n", code: "SSH_VERSION_UNSUPPORTED")
    }

    func testRejectsLongLines() {
        // 255 bytes including CR LF is the RFC limit: 253 characters + CRLF passes, one more fails.
        let ok = "SSH-2.0-" + String(repeating: "a", count: 253 - 8)
        XCTAssertEqual(try read(ok + "\r\n").0, ok)
        assertRejected(ok + "a\r\n", code: "SSH_VERSION_LINE_TOO_LONG")
        // Without any newline the limit applies as soon as it is exceeded.
        assertRejected("SSH-2.0-" + String(repeating: "b", count: 300), code: "SSH_VERSION_LINE_TOO_LONG")
        assertRejected(String(repeating: "c", count: 2000), code: "SSH_VERSION_LINE_TOO_LONG")
    }

    func testRejectsTooManyPreambleLines() {
        assertRejected(
            String(repeating: "junk\r\n", count: SSHVersionReader.maxOtherLines + 1) + "SSH-2.0-x\r\n",
            code: "SSH_VERSION_TOO_MANY_LINES")
    }

    func testRejectsNUL() {
        assertRejected("SSH-2.0-a\u{0}b\r\n", code: "SSH_VERSION_INVALID")
    }
}

final class NegotiationTests: XCTestCase {
    private func kexInit(
        kex: [String] = ["k1"], hostKey: [String] = ["h1"], ciphers: [String] = ["c1"],
        macs: [String] = ["m1"], compression: [String] = ["none"]
    ) -> SSHKexInit {
        SSHKexInit(
            cookie: Array(repeating: 7, count: 16), kexAlgorithms: kex, serverHostKeyAlgorithms: hostKey,
            ciphers: ciphers, macs: macs, compression: compression)
    }

    func testClientPreferenceWins() throws {
        let client = kexInit(kex: ["b", "a"], hostKey: ["y", "x"], ciphers: ["c2", "c1"], macs: ["m2", "m1"], compression: ["zlib", "none"])
        let server = kexInit(kex: ["a", "b"], hostKey: ["x", "y"], ciphers: ["c1", "c2"], macs: ["m1", "m2"])
        let result = try SSHNegotiation.negotiate(client: client, server: server, isAEAD: { _ in false })
        XCTAssertEqual(
            result,
            SSHNegotiatedAlgorithms(
                kex: "b", hostKey: "y", cipherClientToServer: "c2", cipherServerToClient: "c2",
                macClientToServer: "m2", macServerToClient: "m2",
                compressionClientToServer: "none", compressionServerToClient: "none"))
    }

    func testDirectionsNegotiatedSeparately() throws {
        var client = kexInit(ciphers: ["c1", "c2"])
        client.ciphersServerToClient = ["c2"]
        let server = kexInit(ciphers: ["c2", "c1"])
        let result = try SSHNegotiation.negotiate(client: client, server: server, isAEAD: { _ in false })
        XCTAssertEqual(result.cipherClientToServer, "c1")
        XCTAssertEqual(result.cipherServerToClient, "c2")
    }

    func testAEADSkipsMACNegotiation() throws {
        let client = kexInit(ciphers: ["aead"], macs: ["nothing-in-common"])
        let server = kexInit(ciphers: ["aead"], macs: ["m1"])
        let result = try SSHNegotiation.negotiate(client: client, server: server, isAEAD: { $0 == "aead" })
        XCTAssertNil(result.macClientToServer)
        XCTAssertNil(result.macServerToClient)
    }

    func testNoCommonAlgorithmNamesCategoryAndBothLists() {
        let client = kexInit(ciphers: ["3des-cbc", "blowfish"])
        let server = kexInit(ciphers: ["aes128-ctr"])
        XCTAssertThrowsError(try SSHNegotiation.negotiate(client: client, server: server, isAEAD: { _ in false })) { error in
            let error = error as? SSHProtocolError
            XCTAssertEqual(error?.code, "SSH_KEX_NO_COMMON_ALGORITHM")
            XCTAssertEqual(error?.disconnectReason, SSHDisconnectReason.keyExchangeFailed)
            XCTAssertEqual(
                error?.message,
                "no common client-to-server cipher algorithm; client offers [3des-cbc,blowfish], server offers [aes128-ctr]")
        }
    }

    func testMarkersAreNeverNegotiated() {
        // A client echoing our strict marker must not make it the kex algorithm.
        let client = kexInit(kex: ["kex-strict-s-v00@openssh.com", "ext-info-c"])
        let server = kexInit(kex: ["k1", "kex-strict-s-v00@openssh.com"])
        XCTAssertThrowsError(try SSHNegotiation.negotiate(client: client, server: server, isAEAD: { _ in false })) { error in
            XCTAssertEqual((error as? SSHProtocolError)?.code, "SSH_KEX_NO_COMMON_ALGORITHM")
        }
    }

    func testGuessRules() {
        let server = kexInit(kex: ["a", "b"], hostKey: ["x", "y"])
        XCTAssertFalse(SSHNegotiation.guessIsWrong(peer: kexInit(kex: ["a", "ext-info-c"], hostKey: ["x"]), ours: server))
        XCTAssertTrue(
            SSHNegotiation.guessIsWrong(peer: kexInit(kex: ["b", "a"], hostKey: ["x"]), ours: server),
            "different preferred kex: wrong even though b is supported")
        XCTAssertTrue(SSHNegotiation.guessIsWrong(peer: kexInit(kex: ["a"], hostKey: ["y", "x"]), ours: server))
    }

    func testKexInitRoundTrip() throws {
        var original = kexInit(kex: ["curve25519-sha256", "ext-info-c"], hostKey: ["ssh-ed25519", "rsa-sha2-512"])
        original.firstKexPacketFollows = true
        original.languagesClientToServer = ["en"]
        let parsed = try SSHKexInit(payload: original.payload)
        XCTAssertEqual(parsed, original)
    }

    func testKexInitTruncatedIsRejected() {
        let payload = kexInit().payload
        for length in [0, 1, 10, 17, 25, payload.readableBytes - 1] {
            XCTAssertThrowsError(try SSHKexInit(payload: payload.getSlice(at: 0, length: length)!)) { error in
                XCTAssertEqual((error as? SSHProtocolError)?.code, "SSH_MALFORMED_KEXINIT")
            }
        }
    }
}
