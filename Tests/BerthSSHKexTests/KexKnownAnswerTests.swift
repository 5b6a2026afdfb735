@testable import BerthSSHKex
import BerthSSHWire
import Crypto
import NIOCore
import XCTest
import BerthTestSupport

final class KexKnownAnswerTests: XCTestCase {
    /// RFC 7748 §5.2 (single scalar multiplications) and §6.1 (the Alice/Bob exchange): the
    /// X25519 primitive that curve25519-sha256 and the hybrid build on.
    func testX25519RFC7748Vectors() throws {
        let vectors: [(scalar: String, u: String, output: String)] = [
            (
                "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
                "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
                "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"
            ),
            (
                "4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
                "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
                "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"
            ),
            // §6.1: Alice's private key with Bob's public key gives K.
            (
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
                "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
            ),
        ]
        for vector in vectors {
            let key = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: unhex(vector.scalar))
            let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: unhex(vector.u))
            let shared = try key.sharedSecretFromKeyAgreement(with: peer).withUnsafeBytes { Array($0) }
            XCTAssertEqual(hex(shared), vector.output)
        }
        // §6.1: the public keys that go with the private keys.
        let alice = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
        XCTAssertEqual(hex(Array(alice.publicKey.rawRepresentation)), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        let bob = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"))
        XCTAssertEqual(hex(Array(bob.publicKey.rawRepresentation)), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    }

    /// NIST CAVS 14.1 SSH KDF vectors (SP 800-135), as carried in OpenSSL's
    /// test/recipes/30-test_evp_data/evpkdf_ssh.txt: the first SHA-1 and the first SHA-256 set.
    /// K is given already mpint-encoded; the 24-byte SHA-1 keys exercise the K1 || K2 extension.
    func testKeyDerivationNISTVectors() {
        struct Vector { var hash: SSHKexHash; var k: String; var h: String; var sessionID: String; var outputs: [(UInt8, String)] }
        let vectors = [
            Vector(
                hash: .sha1,
                k:
                    "0000008055bae931c07fd824bf10add1902b6fbc7c665347383498a686929ff5a25f8e40cb6645ea814fb1a5e0a11f852f86255641e5ed986e83a78bc8269480eac0b0dfd770cab92e7a28dd87ff452466d6ae867cead63b366b1c286e6c4811a9f14c27aea14c5171d49b78c06e3735d36e6a3be321dd5fc82308f34ee1cb17fba94a59",
                h: "a4ebd45934f56792b5112dcd75a1075fdc889245",
                sessionID: "a4ebd45934f56792b5112dcd75a1075fdc889245",
                outputs: [
                    (UInt8(ascii: "A"), "e2f627c0b43f1ac1"),
                    (UInt8(ascii: "B"), "58471445f342b181"),
                    (UInt8(ascii: "C"), "1ca9d310f86d51f6cb8e7007cb2b220d55c5281ce680b533"),
                    (UInt8(ascii: "D"), "2c60df8603d34cc1dbb03c11f725a44b44008851c73d6844"),
                    (UInt8(ascii: "E"), "472eb8a26166ae6aa8e06868e45c3b26e6eeed06"),
                    (UInt8(ascii: "F"), "e3e2fdb9d7bc21165a3dbe47e1eceb7764390bab"),
                ]),
            Vector(
                hash: .sha256,
                k:
                    "0000008100875c551cef526a4a8be1a7df27e9ed354bac9afb71f53dbae905679d14f9faf2469c53457cf80a366be278965ba6255276ca2d9f4a97d271f71e50d8a9ec46253a6a906ac2c5e4f48b27a63ce08d80390a492aa43bad9d882ccac23dac88bcada4b4d426a362083dab6569c54c224dd2d87643aa227693e141ad1630ce13144e",
                h: "0e683fc8a9ed7c2ff02def23b2745ebc99b267daa86a4aa7697239088253f642",
                sessionID: "0e683fc8a9ed7c2ff02def23b2745ebc99b267daa86a4aa7697239088253f642",
                outputs: [
                    (UInt8(ascii: "A"), "41ff2ead1683f1e6"),
                    (UInt8(ascii: "B"), "e619ecfd9edb50cd"),
                    (UInt8(ascii: "C"), "4a6314d2f7511bf88fad39fb6892f3f218cafd530e72fe43"),
                    (UInt8(ascii: "D"), "084c15fb7f99c65ff134eeb407cee5d540c341dea45a42a5"),
                    (UInt8(ascii: "E"), "41ec5a94fecce7707ea156a6ad29239a891621adacbedb8be70675008d6f9274"),
                    (UInt8(ascii: "F"), "47d3c20aba60981e47b30533623613ff1cacbcf1642fb4ad86ee712f2aed9af8"),
                ]),
        ]
        for vector in vectors {
            for (letter, expected) in vector.outputs {
                let key = SSHKeyDerivation.derive(
                    hash: vector.hash, sharedSecret: unhex(vector.k), exchangeHash: unhex(vector.h),
                    sessionID: unhex(vector.sessionID), letter: letter, length: expected.count / 2)
                XCTAssertEqual(hex(key), expected, "\(vector.hash) \(Character(UnicodeScalar(letter)))")
            }
        }
    }

    /// Longer keys (several extension blocks) and every hash, against python's hashlib.
    func testKeyDerivationAgainstPython() throws {
        let peer = try PythonKexPeer()
        var generator = SeededGenerator(seed: 7748)
        let cases: [(SSHKexHash, String)] = [(.sha1, "sha1"), (.sha256, "sha256"), (.sha384, "sha384"), (.sha512, "sha512")]
        for (hash, name) in cases {
            for length in [1, 16, hash.digestLength, hash.digestLength + 1, 64, 200] {
                let k = SSHEphemeralKeyExchange.mpint(randomBytes(64, using: &generator))
                let h = randomBytes(hash.digestLength, using: &generator)
                let sessionID = randomBytes(hash.digestLength, using: &generator)
                let letter = UInt8(ascii: "A") + UInt8.random(in: 0...5, using: &generator)
                let ours = SSHKeyDerivation.derive(hash: hash, sharedSecret: k, exchangeHash: h, sessionID: sessionID, letter: letter, length: length)
                let theirs = try peer.call([
                    "op": "derive", "hash": name, "K": hex(k), "H": hex(h), "sid": hex(sessionID),
                    "letter": Int(letter), "length": length,
                ])
                XCTAssertEqual(hex(ours), theirs["key"] as? String, "\(name) length \(length)")
                XCTAssertEqual(ours.count, length)
            }
        }
        XCTAssertEqual(SSHKeyDerivation.derive(hash: .sha256, sharedSecret: [1], exchangeHash: [2], sessionID: [3], letter: 65, length: 0), [])
    }

    func testMPIntEncodingOfSharedSecrets() {
        // RFC 4251 §5: a set top bit gets a leading zero; leading zero bytes are dropped.
        XCTAssertEqual(SSHEphemeralKeyExchange.mpint([0x80, 0x01]), [0, 0, 0, 3, 0, 0x80, 0x01])
        XCTAssertEqual(SSHEphemeralKeyExchange.mpint([0x00, 0x00, 0x7f]), [0, 0, 0, 1, 0x7f])
        XCTAssertEqual(SSHEphemeralKeyExchange.mpint([0, 0]), [0, 0, 0, 0])
    }

    func testHashFunctions() {
        // FIPS 180 "abc" digests, first bytes, to pin which function each case is.
        let abc = Array("abc".utf8)
        XCTAssertEqual(hex(SSHKexHash.sha1.digest(abc)), "a9993e364706816aba3e25717850c26c9cd0d89d")
        XCTAssertEqual(hex(SSHKexHash.sha256.digest(abc)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex(SSHKexHash.sha384.digest(abc)).prefix(16), "cb00753f45a35e8b")
        XCTAssertEqual(hex(SSHKexHash.sha512.digest(abc)).prefix(16), "ddaf35a193617aba")
        for hash in [SSHKexHash.sha1, .sha256, .sha384, .sha512] {
            XCTAssertEqual(hash.digest(ByteBuffer(bytes: abc)), hash.digest(abc))
            XCTAssertEqual(hash.digest(abc).count, hash.digestLength)
        }
    }
}
