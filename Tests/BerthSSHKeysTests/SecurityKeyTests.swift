@testable import BerthSSHKeys
import BerthSSHWire
import BerthTestSupport
import Crypto
import Foundation
import NIOCore
import XCTest

/// FIDO security keys (PROTOCOL.u2f). Known answers: OpenSSH's own sshsig test vectors
/// (regress/unittests/sshsig/testdata: ed25519_sk, ecdsa_sk over "This is a test, this is only
/// a test" in namespace "unittest"), signed by a security key with flags 0x01 and counter 0x12345678.
final class SecurityKeyTests: XCTestCase {
    static let ed25519Key = "AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIJsaDYXQYruc6bilCYDIK4YSOeG+zmrRO2M9t03//7LHAAAABHNzaDo="
    static let ed25519Sig =
        "U1NIU0lHAAAAAQAAAEoAAAAac2stc3NoLWVkMjU1MTlAb3BlbnNzaC5jb20AAAAgmxoNhdBiu5zpuKUJgMgrhhI54b7OatE7Yz23Tf//sscAAAAEc3NoOgAAAAh1bml0dGVzdAAAAAAAAAAGc2hhNTEyAAAAZwAAABpzay1zc2gtZWQyNTUxOUBvcGVuc3NoLmNvbQAAAEAi+7eTjW/+LQ2M+sCD+KFtH1n7VFFJon/SZFsxODyV8cWTlFKj617Ys1Ur5TV6uaEXQhck8rBA2oQIHTPANLIPARI0Vng="
    static let ecdsaKey =
        "AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAAAIbmlzdHAyNTYAAABBBKDVa5jRcT5V7E6ysmwVi7HJWh7p5D+hebLPakQcpnD2ajJZ6G/4WzuhlYWnclWY63JspDp299Rlhq5AT86/g8AAAAAEc3NoOg=="
    static let ecdsaSig =
        "U1NIU0lHAAAAAQAAAH8AAAAic2stZWNkc2Etc2hhMi1uaXN0cDI1NkBvcGVuc3NoLmNvbQAAAAhuaXN0cDI1NgAAAEEEoNVrmNFxPlXsTrKybBWLsclaHunkP6F5ss9qRBymcPZqMlnob/hbO6GVhadyVZjrcmykOnb31GWGrkBPzr+DwAAAAARzc2g6AAAACHVuaXR0ZXN0AAAAAAAAAAZzaGE1MTIAAAB3AAAAInNrLWVjZHNhLXNoYTItbmlzdHAyNTZAb3BlbnNzaC5jb20AAABIAAAAIHohGwyy8iKT3zwd1TYA9V/Ioo7h/3zCJUtyq/Qigt/HAAAAIGzidTwq7D/kFa7Xjcp/KkdbIs4MfQpfAW/0OciajlpzARI0Vng="

    /// PROTOCOL.sshsig: the blob around the signature, and the data that was signed.
    private func sshsig(_ armored: String) throws -> (publicKey: [UInt8], signature: [UInt8], signed: [UInt8]) {
        var b = ByteBuffer(bytes: Array(Data(base64Encoded: armored)!))
        XCTAssertEqual(b.readBytes(length: 6), Array("SSHSIG".utf8))
        XCTAssertEqual(b.readSSHUInt32(), 1)
        let publicKey = try XCTUnwrap(b.readSSHStringBytes())
        let namespace = try XCTUnwrap(b.readSSHText())
        _ = b.readSSHStringBytes()
        let hash = try XCTUnwrap(b.readSSHText())
        let signature = try XCTUnwrap(b.readSSHStringBytes())
        XCTAssertEqual(namespace, "unittest")
        XCTAssertEqual(hash, "sha512")
        var signed = ByteBuffer(bytes: Array("SSHSIG".utf8))
        signed.writeSSHText(namespace)
        signed.writeSSHString([UInt8]())
        signed.writeSSHText(hash)
        signed.writeSSHString(Array(SHA512.hash(data: Array("This is a test, this is only a test".utf8))))
        return (publicKey, signature, Array(signed.readableBytesView))
    }

    func testOpenSSHVectors() throws {
        for (key, sig, type) in [(Self.ed25519Key, Self.ed25519Sig, "sk-ssh-ed25519@openssh.com"), (Self.ecdsaKey, Self.ecdsaSig, "sk-ecdsa-sha2-nistp256@openssh.com")] {
            let (publicKey, signature, signed) = try sshsig(sig)
            XCTAssertEqual(publicKey, Array(Data(base64Encoded: key)!))
            let securityKey = try SSHSecurityKey(blob: publicKey)
            XCTAssertEqual(securityKey.keyType, type)
            XCTAssertEqual(securityKey.application, "ssh:")
            let assertion = try XCTUnwrap(securityKey.verify(signatureBlob: signature, over: signed), type)
            XCTAssertEqual(assertion.flags, 0x01)
            XCTAssertEqual(assertion.counter, 0x1234_5678)
            XCTAssertTrue(assertion.userPresent)
            XCTAssertFalse(assertion.userVerified)
            // Other data, other flags or another counter: the signature no longer holds.
            XCTAssertNil(securityKey.verify(signatureBlob: signature, over: signed + [0]))
            for index in [signature.count - 5, signature.count - 1, signature.count - 20] {
                var changed = signature
                changed[index] ^= 0x04
                XCTAssertNil(securityKey.verify(signatureBlob: changed, over: signed), "\(type) byte \(index)")
            }
        }
    }

    func testMalformedBlobsAndSignatures() throws {
        let blob = Array(Data(base64Encoded: Self.ed25519Key)!)
        for length in 0..<blob.count {
            XCTAssertThrowsError(try SSHSecurityKey(blob: Array(blob[0..<length])))
        }
        XCTAssertThrowsError(try SSHSecurityKey(blob: blob + [0]))
        let (_, signature, signed) = try sshsig(Self.ed25519Sig)
        let key = try SSHSecurityKey(blob: blob)
        for length in 0..<signature.count { XCTAssertNil(key.verify(signatureBlob: Array(signature[0..<length]), over: signed)) }
        XCTAssertNil(key.verify(signatureBlob: signature + [0], over: signed))
    }

    func testFuzzNeverTraps() throws {
        var generator = SeededGenerator(seed: 0xF1D0_0016)
        let seeds = [Self.ed25519Key, Self.ecdsaKey].map { Array(Data(base64Encoded: $0)!) }
        let (_, signature, signed) = try sshsig(Self.ecdsaSig)
        let key = try SSHSecurityKey(blob: seeds[1])
        var accepted = 0
        for round in 0..<10_000 {
            var input = round % 2 == 0 ? seeds[round % 4 / 2] : signature
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let at = Int.random(in: 0..<input.count, using: &generator)
                input[at] = UInt8.random(in: 0...255, using: &generator)
            }
            if round % 2 == 0 {
                do { _ = try SSHSecurityKey(blob: input) } catch { XCTAssertTrue(error is SSHKeyError) }
            } else if input != signature, key.verify(signatureBlob: input, over: signed) != nil {
                accepted += 1
            }
        }
        XCTAssertEqual(accepted, 0)
    }
}
