@testable import BerthSSHKeys
import BerthSSHWire
import Crypto
import NIOCore
import XCTest

final class SSHKeysKnownAnswerTests: XCTestCase {
    static func blob(_ build: (inout ByteBuffer) -> Void) -> [UInt8] {
        var buffer = ByteBuffer()
        build(&buffer)
        return Array(buffer.readableBytesView)
    }

    /// RFC 8032 §7.1 tests 1 and 2. BoringSSL's Ed25519 is the deterministic pure variant, so
    /// the signature must match the published bytes.
    func testEd25519RFC8032Vectors() throws {
        let vectors: [(secret: String, publicKey: String, message: String, signature: String)] = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
            ),
        ]
        for vector in vectors {
            let key = try SSHPrivateKey(backing: .ed25519(try .init(rawRepresentation: [UInt8](hex: vector.secret))))
            let expectedBlob = Self.blob {
                $0.writeSSHText("ssh-ed25519"); $0.writeSSHString([UInt8](hex: vector.publicKey))
            }
            XCTAssertEqual(key.publicKeyBlob, expectedBlob)
            XCTAssertEqual(key.signatureAlgorithms, ["ssh-ed25519"])
            let signature = try key.sign([UInt8](hex: vector.message), algorithm: "ssh-ed25519")
            let expected = Self.blob {
                $0.writeSSHText("ssh-ed25519"); $0.writeSSHString([UInt8](hex: vector.signature))
            }
            XCTAssertEqual(signature.hex, expected.hex)
            let publicKey = try SSHPublicKey(blob: expectedBlob)
            XCTAssertTrue(publicKey.verify(signatureBlob: expected, over: [UInt8](hex: vector.message)))
            XCTAssertFalse(publicKey.verify(signatureBlob: expected, over: [UInt8](hex: vector.message) + [0]))
        }
    }

    /// RFC 6979 A.2.5 (P-256, SHA-256): published signatures verify through the RFC 5656 blob;
    /// the published private key gives the published public point.
    func testECDSAP256RFC6979Vectors() throws {
        let x = [UInt8](hex: "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
        let point =
            [0x04] + [UInt8](hex: "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6")
            + [UInt8](hex: "7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299")
        let expectedBlob = Self.blob {
            $0.writeSSHText("ecdsa-sha2-nistp256"); $0.writeSSHText("nistp256"); $0.writeSSHString(point)
        }
        let privateKey = try SSHPrivateKey(backing: .p256(try .init(rawRepresentation: x)))
        XCTAssertEqual(privateKey.publicKeyBlob, expectedBlob)
        let publicKey = try SSHPublicKey(blob: expectedBlob)
        let vectors = [
            ("sample", "EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716", "F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"),
            ("test", "F1ABB023518351CD71D881567B1EA663ED3EFCF6C5132B354F28D3B0B7D38367", "019F4113742A2B14BD25926B49C649155F267E60D3814B4C0CC84250E46F0083"),
        ]
        for (message, r, s) in vectors {
            let body = Self.blob {
                $0.writeSSHMPInt(unsignedBigEndian: [UInt8](hex: r)); $0.writeSSHMPInt(unsignedBigEndian: [UInt8](hex: s))
            }
            let signature = Self.blob {
                $0.writeSSHText("ecdsa-sha2-nistp256"); $0.writeSSHString(body)
            }
            XCTAssertTrue(publicKey.verify(signatureBlob: signature, over: Array(message.utf8)), message)
            XCTAssertFalse(publicKey.verify(signatureBlob: signature, over: Array((message + "!").utf8)), message)
            // The same numbers labelled for another curve must not pass (RFC 5656 §3.1.2).
            let relabelled = Self.blob {
                $0.writeSSHText("ecdsa-sha2-nistp384"); $0.writeSSHString(body)
            }
            XCTAssertFalse(publicKey.verify(signatureBlob: relabelled, over: Array(message.utf8)), message)
        }
        // s = 0x019F… has a clear top bit; r needs the 0x00 mpint prefix. Berth's own signatures
        // use the same encoding and verify.
        let own = try privateKey.sign(Array("sample".utf8), algorithm: "ecdsa-sha2-nistp256")
        XCTAssertTrue(publicKey.verify(signatureBlob: own, over: Array("sample".utf8)))
    }

    /// RFC 8332: one ssh-rsa key, three signature algorithms; each blob names its algorithm and
    /// carries a signature as long as the modulus; a signature only verifies under its own name.
    func testRSASignatureAlgorithmsRFC8332() throws {
        let key = try SSHPrivateKey.generate(.rsa(bits: 2048))
        XCTAssertEqual(key.keyType, "ssh-rsa")
        XCTAssertEqual(key.signatureAlgorithms, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"])
        XCTAssertEqual(key.publicKey.signatureAlgorithms, ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"])
        var publicBlob = ByteBuffer(bytes: key.publicKeyBlob)
        XCTAssertEqual(publicBlob.readSSHText(), "ssh-rsa")
        XCTAssertEqual(publicBlob.readSSHMPIntBytes(), [0x01, 0x00, 0x01])
        XCTAssertEqual(publicBlob.readSSHMPIntBytes()?.count, 257)  // 0x00 + 256 bytes of modulus
        XCTAssertEqual(publicBlob.readableBytes, 0)
        let data = Array("exchange hash".utf8)
        var bodies: [String: [UInt8]] = [:]
        for algorithm in key.signatureAlgorithms {
            let signature = try key.sign(data, algorithm: algorithm)
            var buffer = ByteBuffer(bytes: signature)
            XCTAssertEqual(buffer.readSSHText(), algorithm)
            let body = try XCTUnwrap(buffer.readSSHStringBytes())
            XCTAssertEqual(body.count, 256)
            XCTAssertEqual(buffer.readableBytes, 0)
            bodies[algorithm] = body
            XCTAssertTrue(key.publicKey.verify(signatureBlob: signature, over: data), algorithm)
            XCTAssertFalse(key.publicKey.verify(signatureBlob: signature + [0], over: data), algorithm)
        }
        for (algorithm, body) in bodies {
            for other in key.signatureAlgorithms + ["rsa-sha2-384", "ssh-ed25519", "rsa-sha2-512@openssh.com"] where other != algorithm {
                let relabelled = Self.blob {
                    $0.writeSSHText(other); $0.writeSSHString(body)
                }
                XCTAssertFalse(key.publicKey.verify(signatureBlob: relabelled, over: data), "\(algorithm) as \(other)")
            }
        }
        XCTAssertThrowsError(try key.sign(data, algorithm: "rsa-sha2-384")) { error in
            XCTAssertEqual((error as? SSHKeyError)?.code, "SSH_KEY_BAD_ALGORITHM")
        }
    }

    /// Some implementations strip leading zero bytes from RSA signatures; OpenSSH pads them back.
    func testRSASignatureWithoutLeadingZeroVerifies() throws {
        let key = try SSHPrivateKey.generate(.rsa(bits: 2048))
        for counter in 0..<4096 {
            let data = Array("message \(counter)".utf8)
            var buffer = ByteBuffer(bytes: try key.sign(data, algorithm: "rsa-sha2-256"))
            _ = buffer.readSSHText()
            let body = try XCTUnwrap(buffer.readSSHStringBytes())
            guard body[0] == 0 else { continue }
            let stripped = Self.blob {
                $0.writeSSHText("rsa-sha2-256"); $0.writeSSHString(body.dropFirst())
            }
            XCTAssertTrue(key.publicKey.verify(signatureBlob: stripped, over: data))
            let longer = Self.blob {
                $0.writeSSHText("rsa-sha2-256"); $0.writeSSHString([0] + body)
            }
            XCTAssertFalse(key.publicKey.verify(signatureBlob: longer, over: data))
            return
        }
        XCTFail("no signature with a leading zero byte among 4096")
    }

    func testSigningWithAnAlgorithmOfAnotherKeyTypeThrows() throws {
        let cases: [(SSHKeyKind, [String])] = [
            (.ed25519, ["ssh-rsa", "ecdsa-sha2-nistp256", ""]),
            (.ecdsaP256, ["ecdsa-sha2-nistp384", "ssh-ed25519"]),
            (.ecdsaP384, ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521"]),
            (.ecdsaP521, ["ecdsa-sha2-nistp384", "rsa-sha2-512"]),
        ]
        for (kind, algorithms) in cases {
            let key = try SSHPrivateKey.generate(kind)
            XCTAssertEqual(key.signatureAlgorithms, [key.keyType])
            XCTAssertTrue(key.publicKey.verify(signatureBlob: try key.sign([1, 2, 3], algorithm: key.keyType), over: [1, 2, 3]))
            for algorithm in algorithms {
                XCTAssertThrowsError(try key.sign([1, 2, 3], algorithm: algorithm)) { error in
                    XCTAssertEqual((error as? SSHKeyError)?.code, "SSH_KEY_BAD_ALGORITHM", "\(kind) \(algorithm)")
                }
            }
        }
    }

    /// An ECDSA signature only verifies with the curve of its key, even with a right-looking name.
    func testECDSASignatureCurveMustMatchKey() throws {
        let p256 = try SSHPrivateKey.generate(.ecdsaP256), p384 = try SSHPrivateKey.generate(.ecdsaP384)
        let signature = try p256.sign([9], algorithm: "ecdsa-sha2-nistp256")
        XCTAssertTrue(p256.publicKey.verify(signatureBlob: signature, over: [9]))
        XCTAssertFalse(p384.publicKey.verify(signatureBlob: signature, over: [9]))
        let ed = try SSHPrivateKey.generate(.ed25519)
        XCTAssertFalse(ed.publicKey.verify(signatureBlob: signature, over: [9]))
    }
}
