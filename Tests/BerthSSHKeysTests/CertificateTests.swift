@testable import BerthSSHKeys
import BerthSSHWire
import BerthTestSupport
import Foundation
import NIOCore
import XCTest

/// OpenSSH certificates (PROTOCOL.certkeys). The known answers are certificates made by
/// OpenSSH 9.2's ssh-keygen -s, with the fields ssh-keygen -L prints for them.
final class CertificateTests: XCTestCase {
    // ssh-keygen -s ca -I alice@example -n alice,bob -z 42 -V 20260101000000Z:20270101000000Z
    //   -O force-command="echo forced" -O source-address=127.0.0.0/8,::1/128 user.pub
    static let ed25519Cert =
        "AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIJctlcZ1LsuoTeS+CFhvyRzFnaXaOY3x/+9BaazPk3V8AAAAIN6B31+byjPBB15JgqLMqhi0BRyelwmv6neYKZLdh5UgAAAAAAAAACoAAAABAAAADWFsaWNlQGV4YW1wbGUAAAAQAAAABWFsaWNlAAAAA2JvYgAAAABpVbkAAAAAAGs27IAAAABRAAAADWZvcmNlLWNvbW1hbmQAAAAPAAAAC2VjaG8gZm9yY2VkAAAADnNvdXJjZS1hZGRyZXNzAAAAFwAAABMxMjcuMC4wLjAvOCw6OjEvMTI4AAAAggAAABVwZXJtaXQtWDExLWZvcndhcmRpbmcAAAAAAAAAF3Blcm1pdC1hZ2VudC1mb3J3YXJkaW5nAAAAAAAAABZwZXJtaXQtcG9ydC1mb3J3YXJkaW5nAAAAAAAAAApwZXJtaXQtcHR5AAAAAAAAAA5wZXJtaXQtdXNlci1yYwAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACAykkBMsK8ym3Kni01c8jq9g/4kFftWIQgpLFas5YwR9gAAAFMAAAALc3NoLWVkMjU1MTkAAABAaTzBGhnO0NJg9xy9KChfBqtFm2PWegCnNf8GEq6HKlv8Cwu34IYZJ8lTOvn12XugUnuzP9//treopJMg7SLhCg=="
    static let ed25519CA = "AAAAC3NzaC1lZDI1NTE5AAAAIDKSQEywrzKbcqeLTVzyOr2D/iQV+1YhCCksVqzljBH2"
    static let ed25519User = "AAAAC3NzaC1lZDI1NTE5AAAAIN6B31+byjPBB15JgqLMqhi0BRyelwmv6neYKZLdh5Ug"
    // ssh-keygen -s rsaca -I ecdsa-user -n deploy -z 7 -V … -O clear -O permit-pty euser.pub (rsa-sha2-512)
    static let ecdsaCert =
        "AAAAKGVjZHNhLXNoYTItbmlzdHAyNTYtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgCukJgcGl18EOimB2k9YWTyJs9pQqG3oW++ha53Oo9C8AAAAIbmlzdHAyNTYAAABBBG75WBa28RlxqdTXFgMBR8LOqgeJncgwzS0SlauPgGt/4cKAgg4i/lTNU1dpDAwmp5Ab0vG30oxhHiZ9ryrc8iUAAAAAAAAABwAAAAEAAAAKZWNkc2EtdXNlcgAAAAoAAAAGZGVwbG95AAAAAGlVuQAAAAAAazbsgAAAAAAAAAASAAAACnBlcm1pdC1wdHkAAAAAAAAAAAAAARcAAAAHc3NoLXJzYQAAAAMBAAEAAAEBALKv7EC63EpPg9F73vKdt5pyQlvm20I/C6VSRNffoaV8da91mYsC8nSOMMvWJA/TV986DfSklhMp7zoY+TGHtvS2liO5dXHp0qxliEVCUIGhG+gwz/HlCAZp0e9GgBanMJB/hCcdOHG0TNBGDYP0tPtUcMMhdSqeMwg73caoOW0nyO9Pieq0e5tQIMG7qfdHstgktenRsnX7n8QhAGrTMci0Mrabo4EgSU+ufo4QvRcquQy7YVvK+mUuiT2X8pdiSPvv4fx+D2h6njQ+JMGlTQjf8To3QXmQHP3/n7SZ6m41dgZF4vqWJsDajsQFdPIqEx9NJ5raBJgZZDzWYFvM0U0AAAEUAAAADHJzYS1zaGEyLTUxMgAAAQAkBtCd/dIdJCvcS3iV/PsTbaW4XPwSh9jBdZyS6gss2KNKy0IipFo1WZ3JYnxfH5dUWedEsUAU0a6I4z5awso14ufTQtW+29KIT1vgPzudcbXr4x+eO5HR3LkpKz8qw9g3a+Ad8A3kDRTMwpSrFkIDJtzZSZ9Ls/aPL5oGPIzr8U4OD68WaMDPsTLNSdpEfk//4gtbCuF/5ygDxPTIvNVqjlfQ215myT+QuuDsvu5QXAHt8uhQw4FJwi7971QhYyrv45lWDDh6+J0thSRx1tTRj84o4CLj9YJWsE7hilSIVbtIsQY08T9n/dpLN9IpcOxl4ROO8NKzFkBjY1W84LFX"
    static let rsaCA =
        "AAAAB3NzaC1yc2EAAAADAQABAAABAQCyr+xAutxKT4PRe97ynbeackJb5ttCPwulUkTX36GlfHWvdZmLAvJ0jjDL1iQP01ffOg30pJYTKe86GPkxh7b0tpYjuXVx6dKsZYhFQlCBoRvoMM/x5QgGadHvRoAWpzCQf4QnHThxtEzQRg2D9LT7VHDDIXUqnjMIO93GqDltJ8jvT4nqtHubUCDBu6n3R7LYJLXp0bJ1+5/EIQBq0zHItDK2m6OBIElPrn6OEL0XKrkMu2FbyvplLok9l/KXYkj77+H8fg9oep40PiTBpU0I3/E6N0F5kBz9/5+0mepuNXYGReL6libA2o7EBXTyKhMfTSea2gSYGWQ81mBbzNFN"
    // ssh-keygen -s ca -I rsa-user -n deploy -V … -h ruser.pub: a host certificate.
    static let rsaHostCert =
        "AAAAHHNzaC1yc2EtY2VydC12MDFAb3BlbnNzaC5jb20AAAAgHmELlyKHIZ9+1QqqMM6nQx5MSHpNJlqXJZTOku2dLa4AAAADAQABAAABAQDDRlxLR4vpSqtaaGiaJtadTHHAa/7fkXl0EeNQHAplD/Hl70YGkH4OxwsjtixY0rAGNffPkbOrsvzox0OOb9W2PdX9bOmbGBZbCtd4mcrIodZo5GBEelu0BYT7t8OfVPAczzhG84O0fEPiEh27SH2PP9hglPLs008w0m4FzCwYWIc4lMwUt3/GpNPCeteXvoWwCCqW2fP4oXF7yE9YbyFdw87tGgZYv7H80QnR/A8TQeUQnZD8XdJ7ojrVYJ5RKF2NoeUlOtXUCJoro01mlGK/LDigoZAYN0gzEB6GbzgxqtMNtkQvEoZnzOX/PLxjnC51quPzYPoDWidpFHId4ZA5AAAAAAAAAAAAAAACAAAACHJzYS11c2VyAAAACgAAAAZkZXBsb3kAAAAAaVW5AAAAAABrNuyAAAAAAAAAAAAAAAAAAAAAMwAAAAtzc2gtZWQyNTUxOQAAACAykkBMsK8ym3Kni01c8jq9g/4kFftWIQgpLFas5YwR9gAAAFMAAAALc3NoLWVkMjU1MTkAAABAHuXtD4AJSNBI7R0sD8vRd/O0B4CYWO9E/gs1W52BYGdUytvQnxR9v9fbyIIa8JXvbxKrXt/yeksZNeXWWBPZCg=="

    private func certificate(_ base64: String) throws -> SSHCertificate {
        try SSHCertificate(blob: Array(Data(base64Encoded: base64)!))
    }

    func testEd25519UserCertificateFields() throws {
        let cert = try certificate(Self.ed25519Cert)
        XCTAssertEqual(cert.certType, "ssh-ed25519-cert-v01@openssh.com")
        XCTAssertEqual(cert.kind, .user)
        XCTAssertEqual(cert.keyID, "alice@example")
        XCTAssertEqual(cert.serial, 42)
        XCTAssertEqual(cert.principals, ["alice", "bob"])
        XCTAssertEqual(cert.validAfter, 1_767_225_600)
        XCTAssertEqual(cert.validBefore, 1_798_761_600)
        XCTAssertTrue(cert.isValid(at: 1_767_225_600) && !cert.isValid(at: 1_798_761_600) && !cert.isValid(at: 1_767_225_599))
        XCTAssertEqual(cert.criticalOptions.map(\.name), ["force-command", "source-address"])
        XCTAssertEqual(cert.criticalOptions.map(\.stringValue), ["echo forced", "127.0.0.0/8,::1/128"])
        XCTAssertEqual(cert.extensions.map(\.name), ["permit-X11-forwarding", "permit-agent-forwarding", "permit-port-forwarding", "permit-pty", "permit-user-rc"])
        XCTAssertEqual(cert.signatureKey.blob, Array(Data(base64Encoded: Self.ed25519CA)!))
        XCTAssertEqual(cert.signatureKey.fingerprintSHA256, "SHA256:6pxzhx3qzBuyRPAgnDNQS/Dfvz4c8ZxwNtxeve/+DTs")
        XCTAssertEqual(cert.publicKey.blob, Array(Data(base64Encoded: Self.ed25519User)!))
        XCTAssertTrue(cert.signatureIsValid)
        XCTAssertEqual(cert.authorizedKeysText, "ssh-ed25519-cert-v01@openssh.com " + Self.ed25519Cert)
    }

    func testECDSACertificateSignedByAnRSACA() throws {
        let cert = try certificate(Self.ecdsaCert)
        XCTAssertEqual(cert.certType, "ecdsa-sha2-nistp256-cert-v01@openssh.com")
        XCTAssertEqual(cert.publicKey.keyType, "ecdsa-sha2-nistp256")
        XCTAssertEqual(cert.keyID, "ecdsa-user")
        XCTAssertEqual(cert.principals, ["deploy"])
        XCTAssertEqual(cert.criticalOptions, [])
        XCTAssertEqual(cert.extensions.map(\.name), ["permit-pty"])
        XCTAssertEqual(cert.signatureKey.blob, Array(Data(base64Encoded: Self.rsaCA)!))
        XCTAssertEqual(cert.signatureKey.fingerprintSHA256, "SHA256:NHDc2en3TF9f2iveyylVOxDwKEFfQfdxrczVhGjUP6w")
        XCTAssertTrue(cert.signatureIsValid)
    }

    func testHostCertificate() throws {
        let cert = try certificate(Self.rsaHostCert)
        XCTAssertEqual(cert.certType, "ssh-rsa-cert-v01@openssh.com")
        XCTAssertEqual(cert.kind, .host)
        XCTAssertEqual(cert.publicKey.keyType, "ssh-rsa")
        XCTAssertTrue(cert.signatureIsValid)
    }

    /// Any changed byte before the signature breaks it; anything else is a clear SSHKeyError.
    func testTamperingAndTruncation() throws {
        let blob = Array(Data(base64Encoded: Self.ed25519Cert)!)
        let signedLength = try certificate(Self.ed25519Cert).signedBytes.count
        for index in stride(from: 0, to: signedLength, by: 7) {
            var changed = blob
            changed[index] ^= 0x01
            if let cert = try? SSHCertificate(blob: changed) { XCTAssertFalse(cert.signatureIsValid, "byte \(index)") }
        }
        for length in 0..<blob.count {
            XCTAssertThrowsError(try SSHCertificate(blob: Array(blob[0..<length]))) { error in
                XCTAssertTrue(error is SSHKeyError, "\(length): \(error)")
            }
        }
        XCTAssertThrowsError(try SSHCertificate(blob: blob + [0]))
    }

    func testOptionsMustBeOrderedAndUnique() throws {
        func cert(critical: [(String, String)]) -> [UInt8] {
            var options = ByteBuffer()
            for (name, value) in critical {
                options.writeSSHText(name)
                var data = ByteBuffer()
                data.writeSSHText(value)
                options.writeSSHString(data)
            }
            var original = ByteBuffer(bytes: Array(Data(base64Encoded: Self.ed25519Cert)!))
            var rebuilt = ByteBuffer()
            rebuilt.writeSSHString(original.readSSHStringBytes()!)  // type
            rebuilt.writeSSHString(original.readSSHStringBytes()!)  // nonce
            rebuilt.writeSSHString(original.readSSHStringBytes()!)  // pk
            rebuilt.writeSSHUInt64(original.readSSHUInt64()!)
            rebuilt.writeSSHUInt32(original.readSSHUInt32()!)
            rebuilt.writeSSHString(original.readSSHStringBytes()!)  // key id
            rebuilt.writeSSHString(original.readSSHStringBytes()!)  // principals
            rebuilt.writeSSHUInt64(original.readSSHUInt64()!)
            rebuilt.writeSSHUInt64(original.readSSHUInt64()!)
            _ = original.readSSHStringBytes()
            rebuilt.writeSSHString(options)
            rebuilt.writeBuffer(&original)
            return Array(rebuilt.readableBytesView)
        }
        XCTAssertNoThrow(try SSHCertificate(blob: cert(critical: [("a", "1"), ("b", "2")])))
        XCTAssertThrowsError(try SSHCertificate(blob: cert(critical: [("b", "1"), ("a", "2")])))
        XCTAssertThrowsError(try SSHCertificate(blob: cert(critical: [("a", "1"), ("a", "2")])))
        // The re-encoded options change the signed bytes: the CA signature no longer holds.
        XCTAssertFalse(try SSHCertificate(blob: cert(critical: [("a", "1")])).signatureIsValid)
    }

    /// Random bytes and random mutations: only SSHKeyError, never a trap.
    func testFuzzNeverTraps() {
        var generator = SeededGenerator(seed: 0xCE27_0016)
        let seeds = [Self.ed25519Cert, Self.ecdsaCert, Self.rsaHostCert].map { Array(Data(base64Encoded: $0)!) }
        var valid = 0
        for round in 0..<20_000 {
            var input: [UInt8]
            if round % 4 == 0 {
                input = generator.bytes(Int.random(in: 0...300, using: &generator))
            } else {
                input = seeds[round % seeds.count]
                for _ in 0..<Int.random(in: 1...6, using: &generator) {
                    let at = Int.random(in: 0..<input.count, using: &generator)
                    switch Int.random(in: 0...2, using: &generator) {
                    case 0: input[at] = UInt8.random(in: 0...255, using: &generator)
                    case 1: input.remove(at: at)
                    default: input.insert(UInt8.random(in: 0...255, using: &generator), at: at)
                    }
                }
            }
            do {
                let cert = try SSHCertificate(blob: input)
                if cert.signatureIsValid, !seeds.contains(input) { valid += 1 }
            } catch {
                XCTAssertTrue(error is SSHKeyError, "\(error)")
            }
        }
        XCTAssertEqual(valid, 0)
    }
}
