import XCTest
@testable import BerthSSHCipher

/// Published vectors, run through the same wrappers the packet code uses.
final class KnownAnswerTests: XCTestCase {
    // RFC 8439 §2.4.2: the 96-bit nonce 00000000 0000004a 00000000 is the 64-bit-nonce layout with
    // nonce 0x0000004a00000000 (its first word is the high counter word, zero).
    func testChaCha20RFC8439Encryption() throws {
        let key = ChaCha20Key(Array(UInt8(0)...UInt8(31)))
        var text = Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8)
        try text.withUnsafeMutableBytes { try key.apply(nonce: ChaCha20Key.nonce(0x0000_004a_0000_0000), counter: 1, $0) }
        XCTAssertEqual(
            hex(text),
            "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0bf91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d807ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab77937365af90bbf74a35be6b40b8eedf2785e42874d"
        )
    }

    // The original (DJB) ChaCha20 with 64-bit nonces, as OpenSSH's chacha20-poly1305 uses it:
    // draft-strombergson-chacha-test-vectors-01 TC7 and TC8, 256-bit keys, 20 rounds, blocks 0 and 1.
    func testChaCha20OriginalFormStrombergsonVectors() throws {
        let vectors: [(key: String, nonce: UInt64, stream: String)] = [
            (
                "00112233445566778899aabbccddeeffffeeddccbbaa99887766554433221100", 0x0f1e_2d3c_4b5a_6978,
                "9fadf409c00811d00431d67efbd88fba59218d5d6708b1d685863fabbb0e961eea480fd6fb532bfd494b2151015057423ab60a63fe4f55f7a212e2167ccab931"
                    + "fbfd29cf7bc1d279eddf25dd316bb8843d6edee0bd1ef121d12fa17cbc2c574cccab5e275167b08bd686f8a09df87ec3ffb35361b94ebfa13fec0e4889d18da5"
            ),
            (
                "c46ec1b18ce8a878725a37e780dfb7351f68ed2e194c79fbc6aebee1a667975d", 0x1ada_31d5_cf68_8221,
                "f63a89b75c2271f9368816542ba52f06ed49241792302b00b5e8f80ae9a473afc25b218f519af0fdd406362e8d69de7f54c604a6e00f353f110f771bdca8ab92"
                    + "e5fbc34e60a1d9a9db17345b0a402736853bf910b060bdf1f897b6290f01d138ae2c4c90225ba9ea14d518f55929dea098ca7a6ccfe61227053c84e49a4a3332"
            ),
        ]
        for vector in vectors {
            let key = ChaCha20Key(bytes(vector.key))
            let nonce = try ChaCha20Key.nonce(vector.nonce)
            var both = [UInt8](repeating: 0, count: 128)
            try both.withUnsafeMutableBytes { try key.apply(nonce: nonce, counter: 0, $0) }
            XCTAssertEqual(hex(both), vector.stream)
            // Block 1 alone: the payload of a chacha20-poly1305 packet starts there.
            var second = [UInt8](repeating: 0, count: 64)
            try second.withUnsafeMutableBytes { try key.apply(nonce: nonce, counter: 1, $0) }
            XCTAssertEqual(hex(second), String(vector.stream.suffix(128)))
        }
    }

    // RFC 8439 §2.5.2.
    func testPoly1305RFC8439() throws {
        let poly = try Poly1305()
        let key = bytes("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b")
        let message = Array("Cryptographic Forum Research Group".utf8)
        var tag = [UInt8](repeating: 0, count: 16)
        // Twice on the same context: it is re-keyed per packet.
        for _ in 0..<2 {
            try key.withUnsafeBytes { k in
                try message.withUnsafeBytes { m in
                    try tag.withUnsafeMutableBytes { try poly.tag(key: k, message: m, into: $0) }
                }
            }
            XCTAssertEqual(hex(tag), "a8061dc1305136c6c22b8baf0c0127a9")
        }
    }

    // The Galois/Counter Mode specification (McGrew & Viega), test case 4: AES-128, 60-byte
    // plaintext, 20 bytes of additional data.
    func testAESGCMTestCase4() throws {
        let key = AESGCMKey(bytes("feffe9928665731c6d6a8f9467308308"))
        let plaintext = bytes("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39")
        let aad = bytes("feedfacedeadbeeffeedfacedeadbeefabaddad2")
        let nonces = GCMNonceSequence(iv: bytes("cafebabefacedbaddecaf888"))
        var text = plaintext
        let tag = try aad.withUnsafeBytes { a in
            try text.withUnsafeMutableBytes { try key.seal(nonce: nonces.current(), $0, authenticating: a) }
        }
        XCTAssertEqual(hex(text), "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091")
        XCTAssertEqual(hex(Array(tag)), "5bc94fbc3221a5db94fae95ae7121a47")
        let opened = try aad.withUnsafeBytes { a in
            try text.withUnsafeBytes { c in
                try Array(tag).withUnsafeBytes { try key.open(nonce: nonces.current(), c, tag: $0, authenticating: a) }
            }
        }
        XCTAssertEqual(Array(opened), plaintext)
    }

    // RFC 5647 §7.1: the invocation counter is the IV's last 8 bytes, incremented as a 64-bit
    // integer, wrapping; the fixed field never changes.
    func testGCMInvocationCounter() throws {
        var nonces = GCMNonceSequence(iv: bytes("01020304fffffffffffffffe"))
        nonces.advance()
        XCTAssertEqual(hex(try Array(nonces.current())), "01020304ffffffffffffffff")
        nonces.advance()
        XCTAssertEqual(hex(try Array(nonces.current())), "010203040000000000000000")
    }

    // NIST SP 800-38A F.5.1, F.5.3, F.5.5 (CTR-AES128/192/256.Encrypt), fed block by block and as
    // a whole, so the counter carried between calls is checked too.
    func testAESCTRSP80038A() throws {
        let plaintext = bytes("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
        let counter = bytes("f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff")
        let vectors: [(key: String, ciphertext: String)] = [
            (
                "2b7e151628aed2a6abf7158809cf4f3c",
                "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee"
            ),
            (
                "8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b",
                "1abc932417521ca24f2b0459fe7e6e0b090339ec0aa6faefd5ccc2c6f4ce8e941e36b26bd1ebc670d1bd1d665620abf74f78a7f6d29809585a97daec58c6b050"
            ),
            (
                "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "601ec313775789a5b7a7f504bbf3d228f443e3ca4d62b59aca84e990cacaf5c52b0930daa23de94ce87017ba2d84988ddfc9c58db67aada613c2dd08457941a6"
            ),
        ]
        for vector in vectors {
            var whole = AESCTRTransform(key: bytes(vector.key), iv: counter)
            var text = plaintext
            try text.withUnsafeMutableBytes { try whole.apply($0) }
            XCTAssertEqual(hex(text), vector.ciphertext)

            var piecewise = AESCTRTransform(key: bytes(vector.key), iv: counter)
            var pieces = plaintext
            try pieces.withUnsafeMutableBytes { all in
                for block in 0..<4 { try piecewise.apply(UnsafeMutableRawBufferPointer(rebasing: all[(block * 16)..<(block * 16 + 16)])) }
            }
            XCTAssertEqual(hex(pieces), vector.ciphertext)
        }
    }

    // The 128-bit counter carries from the low into the high 64 bits.
    func testAESCTRCounterCarry() throws {
        var transform = AESCTRTransform(key: [UInt8](repeating: 7, count: 16), iv: bytes("0000000000000001ffffffffffffffff"))
        var block = [UInt8](repeating: 0, count: 16)
        try block.withUnsafeMutableBytes { try transform.apply($0) }
        XCTAssertEqual(transform.counterHigh, 2)
        XCTAssertEqual(transform.counterLow, 0)
        // The second block's key stream equals a fresh transform started at the carried counter.
        var second = [UInt8](repeating: 0, count: 16)
        try second.withUnsafeMutableBytes { try transform.apply($0) }
        var fresh = AESCTRTransform(key: [UInt8](repeating: 7, count: 16), iv: bytes("00000000000000020000000000000000"))
        var expected = [UInt8](repeating: 0, count: 16)
        try expected.withUnsafeMutableBytes { try fresh.apply($0) }
        XCTAssertEqual(second, expected)
        XCTAssertNotEqual(second, block)
    }

    // NIST SP 800-38A F.2.1 (CBC-AES128.Encrypt) and F.2.2 (Decrypt), block by block.
    func testAESCBCSP80038A() throws {
        let key = bytes("2b7e151628aed2a6abf7158809cf4f3c")
        let iv = bytes("000102030405060708090a0b0c0d0e0f")
        let plaintext = bytes("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
        let ciphertext = "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
        var encrypt = try EVPBlockTransform(cbcKey: key, iv: iv, encrypt: true)
        var text = plaintext
        try text.withUnsafeMutableBytes { all in
            for block in 0..<4 { try encrypt.apply(UnsafeMutableRawBufferPointer(rebasing: all[(block * 16)..<(block * 16 + 16)])) }
        }
        XCTAssertEqual(hex(text), ciphertext)
        var decrypt = try EVPBlockTransform(cbcKey: key, iv: iv, encrypt: false)
        try text.withUnsafeMutableBytes { try decrypt.apply($0) }
        XCTAssertEqual(text, plaintext)
    }

    // RFC 4231 test cases 1 and 2 (SHA-256, SHA-512) and RFC 2202 test case 1 (SHA-1). The SSH
    // MAC prefixes the sequence number, so the vector's first 4 bytes are passed as that number.
    func testHMACVectors() throws {
        let cases: [(mac: MACKind, key: [UInt8], data: [UInt8], expected: String)] = [
            (
                .sha256, [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
            ),
            (
                .sha512, [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"
            ),
            (
                .sha256ETM, Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
            ),
            (
                .sha512ETM, Array("Jefe".utf8), Array("what do ya want for nothing?".utf8),
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
            ),
            (
                .sha1, [UInt8](repeating: 0x0b, count: 20), Array("Hi There".utf8),
                "b617318655057264e28bc0b6fb378c8ef146be00"
            ),
        ]
        for c in cases {
            let mac = c.mac.make(key: c.key)
            let sequence = c.data[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            var output = [UInt8](repeating: 0, count: mac.length)
            // The rest split in two, as the classic-MAC opener passes it.
            let rest = Array(c.data[4...])
            let cut = rest.count / 2
            Array(rest[..<cut]).withUnsafeBytes { first in
                Array(rest[cut...]).withUnsafeBytes { second in
                    output.withUnsafeMutableBytes { mac.compute(sequenceNumber: sequence, first, second, into: $0) }
                }
            }
            XCTAssertEqual(hex(output), c.expected, "\(c.mac)")
        }
    }
}

func bytes(_ hex: String) -> [UInt8] {
    var result: [UInt8] = []
    var index = hex.startIndex
    while index < hex.endIndex {
        let next = hex.index(index, offsetBy: 2)
        result.append(UInt8(hex[index..<next], radix: 16)!)
        index = next
    }
    return result
}

func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var text: [UInt8] = []
    for byte in bytes {
        text.append(digits[Int(byte >> 4)])
        text.append(digits[Int(byte & 15)])
    }
    return String(decoding: text, as: UTF8.self)
}
