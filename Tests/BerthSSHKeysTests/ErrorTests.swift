@testable import BerthSSHKeys
import BerthSSHWire
import Foundation
import NIOCore
import XCTest

final class SSHKeysErrorTests: XCTestCase {
    private func blob(_ build: (inout ByteBuffer) -> Void) -> [UInt8] { SSHKeysKnownAnswerTests.blob(build) }

    private func assertKeyError(_ code: String, containing text: String? = nil, file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            guard let keyError = error as? SSHKeyError else { return XCTFail("not an SSHKeyError: \(error)", file: file, line: line) }
            XCTAssertEqual(keyError.code, code, keyError.message, file: file, line: line)
            if let text { XCTAssertTrue(keyError.message.contains(text), "\(keyError.message) lacks \(text)", file: file, line: line) }
        }
    }

    func testUnsupportedKeyTypesAreNamed() {
        let point = [UInt8](repeating: 1, count: 32)
        for type in ["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-dss", "ssh-ed25519-cert-v01@openssh.com", "ssh-ed448"] {
            let key = blob {
                $0.writeSSHText(type); $0.writeSSHString(point); $0.writeSSHText("ssh:")
            }
            assertKeyError("SSH_KEY_UNSUPPORTED_TYPE", containing: "\"\(type)\"") { _ = try SSHPublicKey(blob: key) }
            let line = "\(type) \(Data(key).base64EncodedString()) comment"
            assertKeyError("SSH_KEY_UNSUPPORTED_TYPE", containing: type) { _ = try SSHPublicKey(authorizedKeysText: line) }
        }
    }

    func testMalformedPublicBlobs() throws {
        let valid = try SSHPrivateKey.generate(.ed25519).publicKeyBlob
        assertKeyError("SSH_KEY_MALFORMED") { _ = try SSHPublicKey(blob: []) }
        assertKeyError("SSH_KEY_MALFORMED", containing: "trailing") { _ = try SSHPublicKey(blob: valid + [0]) }
        assertKeyError("SSH_KEY_MALFORMED") { _ = try SSHPublicKey(blob: Array(valid.dropLast())) }
        assertKeyError("SSH_KEY_MALFORMED", containing: "31 bytes") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ssh-ed25519"); $0.writeSSHString([UInt8](repeating: 7, count: 31))
                })
        }

        let p256 = try SSHPrivateKey.generate(.ecdsaP256)
        var reader = ByteBuffer(bytes: p256.publicKeyBlob)
        _ = reader.readSSHText(); _ = reader.readSSHText()
        let point = try XCTUnwrap(reader.readSSHStringBytes())
        assertKeyError("SSH_KEY_MALFORMED", containing: "nistp384") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ecdsa-sha2-nistp256"); $0.writeSSHText("nistp384"); $0.writeSSHString(point)
                })
        }
        let compressed = [0x02 | (point[64] & 1)] + Array(point[1...32])
        assertKeyError("SSH_KEY_MALFORMED", containing: "uncompressed") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ecdsa-sha2-nistp256"); $0.writeSSHText("nistp256"); $0.writeSSHString(compressed)
                })
        }
        var offCurve = point
        offCurve[64] ^= 1
        assertKeyError("SSH_KEY_MALFORMED", containing: "not on the curve") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ecdsa-sha2-nistp256"); $0.writeSSHText("nistp256"); $0.writeSSHString(offCurve)
                })
        }

        let rsa = try SSHPrivateKey.generate(.rsa(bits: 2048))
        var rsaReader = ByteBuffer(bytes: rsa.publicKeyBlob)
        _ = rsaReader.readSSHText()
        let e = try XCTUnwrap(rsaReader.readSSHMPIntBytes()), n = try XCTUnwrap(rsaReader.readSSHMPIntBytes())
        assertKeyError("SSH_KEY_MALFORMED", containing: "leading zero") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ssh-rsa"); $0.writeSSHString([0] + e); $0.writeSSHString(n)
                })
        }
        assertKeyError("SSH_KEY_MALFORMED", containing: "negative") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ssh-rsa"); $0.writeSSHString(e); $0.writeSSHString(Array(n.dropFirst()))
                })
        }
        assertKeyError("SSH_KEY_MALFORMED", containing: "invalid RSA") {  // even exponent
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ssh-rsa"); $0.writeSSHString([0x01, 0x00, 0x00]); $0.writeSSHString(n)
                })
        }
        let small = [0x00, 0xC0] + [UInt8](repeating: 0xAB, count: 94) + [0x01]  // 768 bits
        assertKeyError("SSH_KEY_RSA_TOO_SMALL", containing: "768 bits") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ssh-rsa"); $0.writeSSHString(e); $0.writeSSHString(small)
                })
        }
        let huge = [0x00, 0xC0] + [UInt8](repeating: 0xAB, count: 2048) + [0x01]
        assertKeyError("SSH_KEY_RSA_TOO_LARGE") {
            _ = try SSHPublicKey(
                blob: self.blob {
                    $0.writeSSHText("ssh-rsa"); $0.writeSSHString(e); $0.writeSSHString(huge)
                })
        }
    }

    func testAuthorizedKeysText() throws {
        let key = try SSHPrivateKey.generate(.ecdsaP384).publicKey
        let text = key.authorizedKeysText
        XCTAssertTrue(text.hasPrefix("ecdsa-sha2-nistp384 AAAA"))
        XCTAssertEqual(text.split(separator: " ").count, 2)
        XCTAssertEqual(try SSHPublicKey(authorizedKeysText: text), key)
        XCTAssertEqual(try SSHPublicKey(authorizedKeysText: "  \(text)\tuser@host with spaces\n"), key)
        let base64 = String(text.split(separator: " ")[1])
        assertKeyError("SSH_KEY_MALFORMED", containing: "ssh-ed25519") { _ = try SSHPublicKey(authorizedKeysText: "ssh-ed25519 \(base64)") }
        assertKeyError("SSH_KEY_MALFORMED") { _ = try SSHPublicKey(authorizedKeysText: "ecdsa-sha2-nistp384") }
        assertKeyError("SSH_KEY_MALFORMED", containing: "base64") { _ = try SSHPublicKey(authorizedKeysText: "ecdsa-sha2-nistp384 !!!!") }
        assertKeyError("SSH_KEY_UNSUPPORTED_FORMAT", containing: "options") {
            _ = try SSHPublicKey(authorizedKeysText: "from=\"10.0.0.1\" \(text)")
        }
    }

    func testPrivateKeyTextErrors() throws {
        let key = try SSHPrivateKey.generate(.ed25519)
        assertKeyError("SSH_KEY_UNSUPPORTED_FORMAT", containing: "public key") { _ = try SSHPrivateKey(text: key.publicKey.authorizedKeysText) }
        assertKeyError("SSH_KEY_MALFORMED", containing: "BEGIN") { _ = try SSHPrivateKey(text: "hello") }
        assertKeyError("SSH_KEY_UNSUPPORTED_TYPE", containing: "ssh-dss") {
            _ = try SSHPrivateKey(text: "-----BEGIN DSA PRIVATE KEY-----\nAAAA\n-----END DSA PRIVATE KEY-----\n")
        }
        assertKeyError("SSH_KEY_UNSUPPORTED_FORMAT", containing: "CERTIFICATE") {
            _ = try SSHPrivateKey(text: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
        }
        assertKeyError("SSH_KEY_MALFORMED", containing: "END") {
            _ = try SSHPrivateKey(text: "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n")
        }
        assertKeyError("SSH_KEY_RSA_TOO_SMALL") { _ = try SSHPrivateKey.generate(.rsa(bits: 1024)) }
        assertKeyError("SSH_KEY_BAD_SIZE") { _ = try SSHPrivateKey.generate(.rsa(bits: 2050)) }
    }

    /// Edits one field of a valid OpenSSH file so each check in the reader is reached.
    func testOpenSSHFileConsistencyChecks() throws {
        let a = try SSHPrivateKey.generate(.ed25519), b = try SSHPrivateKey.generate(.ed25519)
        let bytes = try SSHKeysInteropTests.body(a.openSSHText(comment: "a"))
        func armour(_ bytes: [UInt8]) -> String {
            "-----BEGIN OPENSSH PRIVATE KEY-----\n\(Data(bytes).base64EncodedString())\n-----END OPENSSH PRIVATE KEY-----\n"
        }
        // Layout: magic(15) "none"(8) "none"(8) ""(4) count(4) string(public blob) string(private).
        let countOffset = 15 + 8 + 8 + 4
        let publicOffset = countOffset + 4 + 4
        XCTAssertEqual(Array(bytes[publicOffset..<(publicOffset + a.publicKeyBlob.count)]), a.publicKeyBlob)
        XCTAssertEqual(try SSHPrivateKey(text: armour(bytes)).publicKey, a.publicKey)

        var swapped = bytes
        swapped.replaceSubrange(publicOffset..<(publicOffset + b.publicKeyBlob.count), with: b.publicKeyBlob)
        assertKeyError("SSH_KEY_MISMATCH") { _ = try SSHPrivateKey(text: armour(swapped)) }

        var twoKeys = bytes
        twoKeys[countOffset + 3] = 2
        assertKeyError("SSH_KEY_UNSUPPORTED_FORMAT", containing: "2 keys") { _ = try SSHPrivateKey(text: armour(twoKeys)) }

        let checkOffset = try SSHKeysInteropTests.checkIntegerOffset(bytes)
        var badCheck = bytes
        badCheck[checkOffset] ^= 0xFF
        assertKeyError("SSH_KEY_MALFORMED", containing: "check integers") { _ = try SSHPrivateKey(text: armour(badCheck)) }

        // The comment "a" leaves 4 padding bytes (1, 2, 3, 4) at the end of the file.
        XCTAssertEqual(Array(bytes.suffix(4)), [1, 2, 3, 4])
        var badPadding = bytes
        badPadding[badPadding.count - 1] = 5
        assertKeyError("SSH_KEY_MALFORMED", containing: "padding") { _ = try SSHPrivateKey(text: armour(badPadding)) }

        var encrypted = bytes
        encrypted.replaceSubrange(15..<23, with: [0, 0, 0, 4] + Array("aes2".utf8))
        assertKeyError("SSH_KEY_ENCRYPTED", containing: "ssh-keygen -p") { _ = try SSHPrivateKey(text: armour(encrypted)) }
    }
}
