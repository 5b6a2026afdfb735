import BerthSSHWire
import Foundation
import NIOCore

/// An OpenSSH certificate (PROTOCOL.certkeys in openssh-portable): a public key with a key ID,
/// principals, a validity window, critical options and extensions, signed by a CA key. Parsing
/// checks the encoding only; `signatureIsValid` checks the CA's signature, and the caller
/// decides whether it trusts `signatureKey` and whether the certificate is valid now.
public struct SSHCertificate: Sendable, Hashable {
    public enum Kind: UInt32, Sendable {
        case user = 1
        case host = 2
    }

    /// One critical option or extension: a name and its data (for the string-valued ones,
    /// itself an SSH string).
    public struct Option: Sendable, Hashable {
        public var name: String
        public var data: [UInt8]

        /// The single string inside `data` (force-command, source-address); nil if it is not one.
        public var stringValue: String? {
            var buffer = ByteBuffer(bytes: data)
            guard let text = buffer.readSSHText(), buffer.readableBytes == 0 else { return nil }
            return text
        }
    }

    /// Certificate type → the plain key type it wraps.
    public static let plainKeyTypes: [String: String] = [
        "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
        "ssh-rsa-cert-v01@openssh.com": "ssh-rsa",
    ]

    /// User-auth signature algorithm for certificates → the algorithm inside the signature.
    public static let signatureAlgorithms: [String: String] = [
        "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
        "rsa-sha2-512-cert-v01@openssh.com": "rsa-sha2-512",
        "rsa-sha2-256-cert-v01@openssh.com": "rsa-sha2-256",
    ]

    public let certType: String
    public let blob: [UInt8]
    /// The certified key: what signs the user's authentication.
    public let publicKey: SSHPublicKey
    public let serial: UInt64
    public let kind: Kind
    public let keyID: String
    /// Empty means any principal (PROTOCOL.certkeys); callers decide whether they allow that.
    public let principals: [String]
    public let validAfter: UInt64
    public let validBefore: UInt64
    public let criticalOptions: [Option]
    public let extensions: [Option]
    public let signatureKey: SSHPublicKey
    let signedBytes: [UInt8]
    let signature: [UInt8]

    public init(blob: [UInt8]) throws {
        var buffer = ByteBuffer(bytes: blob)
        guard let type = buffer.readSSHText() else { throw SSHKeyError.malformed("certificate without a type") }
        guard let plainType = Self.plainKeyTypes[type] else { throw SSHKeyError.unsupportedType(type) }
        guard buffer.readSSHStringBytes() != nil else { throw SSHKeyError.malformed("\(type) without a nonce") }
        // The certified key's fields, re-encoded as a plain key blob so SSHPublicKey checks them.
        var plain = ByteBuffer()
        plain.writeSSHText(plainType)
        let fieldCount = plainType == "ssh-ed25519" ? 1 : 2
        for _ in 0..<fieldCount {
            guard let field = buffer.readSSHStringBytes() else { throw SSHKeyError.malformed("\(type) key fields are truncated") }
            plain.writeSSHString(field)
        }
        publicKey = try SSHPublicKey(blob: Array(plain.readableBytesView))
        guard let serial = buffer.readSSHUInt64(), let rawKind = buffer.readSSHUInt32() else { throw SSHKeyError.malformed("\(type) is truncated") }
        guard let kind = Kind(rawValue: rawKind) else { throw SSHKeyError.malformed("\(type) has certificate type \(rawKind), not user (1) or host (2)") }
        guard let keyIDBytes = buffer.readSSHStringBytes(), let keyID = String(bytes: keyIDBytes, encoding: .utf8) else {
            throw SSHKeyError.malformed("\(type) key ID is missing or not UTF-8")
        }
        guard let principalBytes = buffer.readSSHStringBytes() else { throw SSHKeyError.malformed("\(type) principals are truncated") }
        principals = try Self.strings(principalBytes, what: "principals")
        guard let validAfter = buffer.readSSHUInt64(), let validBefore = buffer.readSSHUInt64() else {
            throw SSHKeyError.malformed("\(type) validity is truncated")
        }
        guard let critical = buffer.readSSHStringBytes(), let extensions = buffer.readSSHStringBytes(), buffer.readSSHStringBytes() != nil else {
            throw SSHKeyError.malformed("\(type) options are truncated")
        }
        criticalOptions = try Self.options(critical, what: "critical options")
        self.extensions = try Self.options(extensions, what: "extensions")
        guard let signatureKeyBlob = buffer.readSSHStringBytes() else { throw SSHKeyError.malformed("\(type) has no signature key") }
        signedBytes = Array(blob[0..<buffer.readerIndex])
        // Chained certificates are not allowed (PROTOCOL.certkeys); SSHPublicKey refuses them.
        signatureKey = try SSHPublicKey(blob: signatureKeyBlob)
        guard let signature = buffer.readSSHStringBytes() else { throw SSHKeyError.malformed("\(type) has no signature") }
        guard buffer.readableBytes == 0 else { throw SSHKeyError.malformed("\(type) has \(buffer.readableBytes) trailing bytes") }
        self.certType = type
        self.blob = blob
        self.serial = serial
        self.kind = kind
        self.keyID = keyID
        self.validAfter = validAfter
        self.validBefore = validBefore
        self.signature = signature
    }

    /// The CA's signature over every field before it. RSA CAs must use SHA-2, as OpenSSH's
    /// default CASignatureAlgorithms requires.
    public var signatureIsValid: Bool {
        var buffer = ByteBuffer(bytes: signature)
        guard let algorithm = buffer.readSSHText(), algorithm != "ssh-rsa" else { return false }
        return signatureKey.verify(signatureBlob: signature, over: signedBytes)
    }

    /// `valid after <= now < valid before`.
    public func isValid(at secondsSince1970: UInt64) -> Bool {
        validAfter <= secondsSince1970 && secondsSince1970 < validBefore
    }

    /// `TYPE BASE64`, the form the auth layer receives.
    public var authorizedKeysText: String { "\(certType) \(Data(blob).base64EncodedString())" }

    private static func strings(_ bytes: [UInt8], what: String) throws -> [String] {
        var buffer = ByteBuffer(bytes: bytes)
        var result: [String] = []
        while buffer.readableBytes > 0 {
            guard let raw = buffer.readSSHStringBytes(), let text = String(bytes: raw, encoding: .utf8) else {
                throw SSHKeyError.malformed("certificate \(what) are not a list of UTF-8 strings")
            }
            result.append(text)
        }
        return result
    }

    /// Names must be unique and in lexical order (PROTOCOL.certkeys, "Critical options").
    private static func options(_ bytes: [UInt8], what: String) throws -> [Option] {
        var buffer = ByteBuffer(bytes: bytes)
        var result: [Option] = []
        while buffer.readableBytes > 0 {
            guard let nameBytes = buffer.readSSHStringBytes(), let name = String(bytes: nameBytes, encoding: .utf8),
                let data = buffer.readSSHStringBytes()
            else {
                throw SSHKeyError.malformed("certificate \(what) are truncated")
            }
            if let last = result.last, !(last.name.utf8.lexicographicallyPrecedes(name.utf8)) {
                throw SSHKeyError.malformed("certificate \(what) are not in order or repeat \"\(SSHKeyError.printable(name))\"")
            }
            result.append(Option(name: name, data: data))
        }
        return result
    }
}
