import BerthSSHWire
import Crypto
import Foundation
import NIOCore

/// A FIDO/U2F security key as OpenSSH uses it (PROTOCOL.u2f in openssh-portable):
/// `sk-ssh-ed25519@openssh.com` and `sk-ecdsa-sha2-nistp256@openssh.com`. The authenticator signs
/// SHA256(application) || flags || counter || SHA256(message), so a valid signature proves the
/// application, the flags (user presence, user verification) and the counter it reports.
public struct SSHSecurityKey: Sendable, Hashable {
    public static let keyTypes: Set<String> = ["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]

    /// What one signature asserts; whether that is enough is the caller's decision.
    public struct Assertion: Sendable, Hashable {
        public let flags: UInt8
        public let counter: UInt32
        /// U2F/CTAP "user present" (the key was touched).
        public var userPresent: Bool { flags & 0x01 != 0 }
        /// CTAP2 "user verified" (PIN or biometric).
        public var userVerified: Bool { flags & 0x04 != 0 }
    }

    public let keyType: String
    public let blob: [UInt8]
    /// The FIDO application (relying party) the key was made for, `ssh:` unless chosen otherwise.
    public let application: String
    /// The plain key inside: ssh-ed25519 or ecdsa-sha2-nistp256.
    public let key: SSHPublicKey

    public init(blob: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: blob)
        guard let type = buffer.readSSHText() else { throw SSHKeyError.malformed("security key blob without a type") }
        var plain = ByteBuffer()
        switch type {
        case "sk-ssh-ed25519@openssh.com":
            guard let point = buffer.readSSHStringBytes() else { throw SSHKeyError.malformed("\(type) blob is truncated") }
            plain.writeSSHText("ssh-ed25519")
            plain.writeSSHString(point)
        case "sk-ecdsa-sha2-nistp256@openssh.com":
            guard let curve = buffer.readSSHStringBytes(), let point = buffer.readSSHStringBytes() else {
                throw SSHKeyError.malformed("\(type) blob is truncated")
            }
            plain.writeSSHText("ecdsa-sha2-nistp256")
            plain.writeSSHString(curve)
            plain.writeSSHString(point)
        default:
            throw SSHKeyError.unsupportedType(type)
        }
        guard let applicationBytes = buffer.readSSHStringBytes(), let application = String(bytes: applicationBytes, encoding: .utf8) else {
            throw SSHKeyError.malformed("\(type) blob has no application")
        }
        guard buffer.readableBytes == 0 else { throw SSHKeyError.malformed("\(type) blob has \(buffer.readableBytes) trailing bytes") }
        key = try SSHPublicKey(blob: Array(plain.readableBytesView))
        keyType = type
        self.blob = blob
        self.application = application
    }

    /// The assertion if `signatureBlob` (`string type, string signature, byte flags, uint32
    /// counter`) is this key's signature over `data`; nil otherwise.
    public func verify(signatureBlob: [UInt8], over data: [UInt8]) -> Assertion? {
        var buffer = ByteBuffer(bytes: signatureBlob)
        guard buffer.readSSHText() == keyType, let signature = buffer.readSSHStringBytes(),
            let flags = buffer.readSSHUInt8(), let counter = buffer.readSSHUInt32(), buffer.readableBytes == 0
        else { return nil }
        var signed = Array(SHA256.hash(data: Array(application.utf8)))
        signed.append(flags)
        withUnsafeBytes(of: counter.bigEndian) { signed.append(contentsOf: $0) }
        signed.append(contentsOf: SHA256.hash(data: data))
        switch key.backing {
        case .ed25519(let ed25519):
            guard signature.count == 64, ed25519.isValidSignature(signature, for: signed) else { return nil }
        case .p256(let p256):
            guard let raw = ECDSACurve.p256.rawSignature(signature), let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: raw),
                p256.isValidSignature(parsed, for: signed)
            else { return nil }
        default:
            return nil
        }
        return Assertion(flags: flags, counter: counter)
    }

    public var authorizedKeysText: String { "\(keyType) \(Data(blob).base64EncodedString())" }
}
