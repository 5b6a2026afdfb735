@testable import BerthSSHKeys
import BerthSSHWire
import Foundation
import NIOCore
import XCTest
import BerthTestSupport

/// Random and mutated inputs for every parser: they must only throw SSHKeyError or return false.
final class SSHKeysFuzzTests: XCTestCase {
    static let kinds: [SSHKeyKind] = [.ed25519, .ecdsaP256, .ecdsaP384, .ecdsaP521, .rsa(bits: 2048)]

    static func mutate(_ input: [UInt8], using random: inout SeededGenerator) -> [UInt8] {
        var bytes = input
        for _ in 0..<Int.random(in: 1...3, using: &random) {
            switch Int.random(in: 0..<6, using: &random) {
            case 0 where !bytes.isEmpty:  // flip bits
                bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= UInt8.random(in: 1...255, using: &random)
            case 1 where !bytes.isEmpty:  // truncate
                bytes.removeLast(Int.random(in: 1...bytes.count, using: &random))
            case 2:  // insert bytes
                let at = Int.random(in: 0...bytes.count, using: &random)
                bytes.insert(contentsOf: (0..<Int.random(in: 1...8, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }, at: at)
            case 3 where bytes.count >= 4:  // overwrite a would-be length field with an extreme value
                let at = Int.random(in: 0...(bytes.count - 4), using: &random)
                let value: [UInt8] = [[0xFF, 0xFF, 0xFF, 0xFF], [0, 0, 0, 0], [0x7F, 0xFF, 0xFF, 0xFF], [0, 0, 1, 0]][Int.random(in: 0..<4, using: &random)]
                bytes.replaceSubrange(at..<(at + 4), with: value)
            case 4 where !bytes.isEmpty:  // delete a byte
                bytes.remove(at: Int.random(in: 0..<bytes.count, using: &random))
            default:  // append random bytes
                bytes += (0..<Int.random(in: 1...16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            }
        }
        return bytes
    }

    static func randomBytes(_ count: Int, using random: inout SeededGenerator) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
    }

    func testPublicKeyBlobFuzz() throws {
        var random = SeededGenerator(seed: 0x4B45_5953_424C_4F42)
        let seeds = try Self.kinds.map { try SSHPrivateKey.generate($0).publicKeyBlob }
        var accepted = 0
        for round in 0..<6000 {
            let input: [UInt8]
            if round % 5 == 0 {
                // A known type name followed by noise reaches each type's field parser.
                let type = ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp521", "ssh-rsa"][round % 4]
                input = SSHKeysKnownAnswerTests.blob { $0.writeSSHText(type) } + Self.randomBytes(Int.random(in: 0..<200, using: &random), using: &random)
            } else if round % 5 == 1 {
                input = Self.randomBytes(Int.random(in: 0..<300, using: &random), using: &random)
            } else {
                input = Self.mutate(seeds[round % seeds.count], using: &random)
            }
            do {
                let key = try SSHPublicKey(blob: input)
                accepted += 1
                XCTAssertEqual(key.blob, input)
                XCTAssertEqual(try SSHPublicKey(blob: key.blob), key)
                XCTAssertEqual(try SSHPublicKey(authorizedKeysText: key.authorizedKeysText), key)
            } catch is SSHKeyError {
            } catch {
                XCTFail("non-SSHKeyError for \(input.hex): \(error)")
            }
            let text = String(decoding: input, as: UTF8.self)
            do { _ = try SSHPublicKey(authorizedKeysText: "ssh-rsa \(Data(input).base64EncodedString()) \(text)") } catch is SSHKeyError {} catch { XCTFail("\(error)") }
        }
        // Some mutations still give a valid key (a flipped bit inside an Ed25519 key or an RSA
        // modulus), but most inputs must end in an error path, or the fuzzing tests nothing.
        XCTAssertLessThan(accepted, 6000 / 4)
    }

    func testVerifyFuzz() throws {
        var random = SeededGenerator(seed: 0x5645_5249_4659)
        let data = Array("fuzzed exchange hash".utf8)
        for kind in Self.kinds {
            let key = try SSHPrivateKey.generate(kind)
            let signatures = try key.signatureAlgorithms.map { try key.sign(data, algorithm: $0) }
            for signature in signatures { XCTAssertTrue(key.publicKey.verify(signatureBlob: signature, over: data)) }
            for round in 0..<1500 {
                let original = signatures[round % signatures.count]
                let input =
                    round % 4 == 0
                    ? Self.randomBytes(Int.random(in: 0..<600, using: &random), using: &random)
                    : Self.mutate(original, using: &random)
                if input != original {
                    XCTAssertFalse(key.publicKey.verify(signatureBlob: input, over: data), "\(kind): \(input.hex)")
                }
            }
        }
    }

    func testPrivateKeyTextFuzz() throws {
        var random = SeededGenerator(seed: 0x5052_4956_4154_45)
        var seeds: [(label: String, der: [UInt8])] = []
        for kind in Self.kinds {
            let key = try SSHPrivateKey.generate(kind)
            seeds.append(("OPENSSH PRIVATE KEY", try SSHKeysInteropTests.body(key.openSSHText(comment: "fuzz"))))
        }
        if case .rsa(let rsa, _) = try SSHPrivateKey.generate(.rsa(bits: 2048)).backing {
            seeds.append(("RSA PRIVATE KEY", Array(rsa.derRepresentation)))
            seeds.append(("PRIVATE KEY", Array(rsa.pkcs8DERRepresentation)))
        }
        if case .p384(let ec) = try SSHPrivateKey.generate(.ecdsaP384).backing {
            seeds.append(("PRIVATE KEY", Array(ec.derRepresentation)))
            // RFC 5915 ECPrivateKey: version 1, scalar, [0] named curve.
            let scalar = Array(ec.rawRepresentation)
            let oid = [0x06, 0x05] + KeyOID.secp384r1
            let sec1 = DERWriter.sequence([[0x02, 0x01, 0x01], [0x04] + DERWriter.length(scalar.count) + scalar, [0xA0] + DERWriter.length(oid.count) + oid])
            seeds.append(("EC PRIVATE KEY", sec1))
        }
        if case .ed25519(let ed) = try SSHPrivateKey.generate(.ed25519).backing {
            seeds.append(("PRIVATE KEY", Array(ed.derRepresentation)))
        }
        for (label, der) in seeds {
            let text = "-----BEGIN \(label)-----\n\(Data(der).base64EncodedString())\n-----END \(label)-----\n"
            XCTAssertNoThrow(try SSHPrivateKey(text: text), label)
        }
        for round in 0..<3000 {
            let (label, der) = seeds[round % seeds.count]
            let text: String
            switch round % 6 {
            case 0:
                // Mutate the armoured text itself (labels, line breaks, base64 alphabet).
                let valid = "-----BEGIN \(label)-----\n\(Data(der).base64EncodedString())\n-----END \(label)-----\n"
                text = String(decoding: Self.mutate(Array(valid.utf8), using: &random), as: UTF8.self)
            case 1:
                text =
                    "-----BEGIN \(label)-----\n\(Data(Self.randomBytes(Int.random(in: 0..<400, using: &random), using: &random)).base64EncodedString())\n-----END \(label)-----\n"
            default:
                text = "-----BEGIN \(label)-----\n\(Data(Self.mutate(der, using: &random)).base64EncodedString())\n-----END \(label)-----\n"
            }
            do {
                let key = try SSHPrivateKey(text: text)
                // A mutation that still loads must be a complete, self-consistent key.
                let signature = try key.sign(Array("check".utf8), algorithm: key.signatureAlgorithms[0])
                XCTAssertTrue(key.publicKey.verify(signatureBlob: signature, over: Array("check".utf8)))
            } catch is SSHKeyError {
            } catch {
                XCTFail("non-SSHKeyError for \(label) round \(round): \(error)")
            }
        }
    }
}
