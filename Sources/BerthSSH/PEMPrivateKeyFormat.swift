import Crypto
import Foundation
import NIOSSH

/// PEM private keys: PKCS#8 (`BEGIN PRIVATE KEY`) for ed25519 and ECDSA, SEC1
/// (`BEGIN EC PRIVATE KEY`) for ECDSA. RSA in either form is refused with advice.
enum PEMPrivateKeyFormat {
    private static let ed25519OID: [UInt8] = [0x06, 0x03, 0x2B, 0x65, 0x70]
    private static let rsaOID: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]
    /// OCTET STRING(34) wrapping OCTET STRING(32): how PKCS#8 carries the ed25519 seed (RFC 8410).
    private static let ed25519SeedPrefix: [UInt8] = [0x04, 0x22, 0x04, 0x20]

    static func parse(label: String, der: [UInt8], pem: String) throws -> NIOSSHPrivateKey {
        switch label {
        case "RSA PRIVATE KEY":
            throw HostKeyError.rsa
        case "ENCRYPTED PRIVATE KEY":
            throw HostKeyError.encrypted
        case "EC PRIVATE KEY":
            return try ecdsa(pem: pem)
        case "PRIVATE KEY":
            if der.firstRange(of: rsaOID) != nil { throw HostKeyError.rsa }
            if let oid = der.firstRange(of: ed25519OID) {
                let rest = Array(der[oid.upperBound...])
                guard let seed = rest.firstRange(of: ed25519SeedPrefix), rest.count >= seed.upperBound + 32 else {
                    throw HostKeyError.malformed("ed25519 PKCS#8 key without a 32-byte seed")
                }
                return NIOSSHPrivateKey(ed25519Key: try .init(rawRepresentation: rest[seed.upperBound..<(seed.upperBound + 32)]))
            }
            return try ecdsa(pem: pem)
        default:
            throw HostKeyError.unsupportedType("PEM \"\(label)\"")
        }
    }

    private static func ecdsa(pem: String) throws -> NIOSSHPrivateKey {
        if let key = try? P256.Signing.PrivateKey(pemRepresentation: pem) { return NIOSSHPrivateKey(p256Key: key) }
        if let key = try? P384.Signing.PrivateKey(pemRepresentation: pem) { return NIOSSHPrivateKey(p384Key: key) }
        if let key = try? P521.Signing.PrivateKey(pemRepresentation: pem) { return NIOSSHPrivateKey(p521Key: key) }
        throw HostKeyError.malformed("not an ECDSA P-256/P-384/P-521 key")
    }
}
