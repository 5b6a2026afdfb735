import Crypto
import Foundation
import NIOSSH

/// Reads and writes the unencrypted `openssh-key-v1` private key format that `ssh-keygen`
/// produces, for the key types the SSH library can use (ed25519, ECDSA P-256/384/521).
enum OpenSSHPrivateKeyFormat {
    static let armorBegin = "-----BEGIN OPENSSH PRIVATE KEY-----"
    static let armorEnd = "-----END OPENSSH PRIVATE KEY-----"
    private static let magic = Array("openssh-key-v1".utf8) + [0]

    static func parse(der bytes: [UInt8]) throws -> NIOSSHPrivateKey {
        guard bytes.starts(with: magic) else { throw HostKeyError.malformed("not an openssh-key-v1 key") }
        var reader = SSHWireReader(bytes[magic.count...])
        let cipher = try reader.readText()
        let kdf = try reader.readText()
        _ = try reader.readString()
        guard cipher == "none", kdf == "none" else { throw HostKeyError.encrypted }
        guard try reader.readUInt32() == 1 else { throw HostKeyError.malformed("exactly one key per file is supported") }
        _ = try reader.readString()
        var secret = SSHWireReader(try reader.readString())
        guard try secret.readUInt32() == secret.readUInt32() else { throw HostKeyError.malformed("check bytes differ") }
        let type = try secret.readText()
        switch type {
        case "ssh-ed25519":
            _ = try secret.readString()
            let privatePart = try secret.readString()
            guard privatePart.count == 64 else { throw HostKeyError.malformed("ed25519 private part has \(privatePart.count) bytes") }
            return NIOSSHPrivateKey(ed25519Key: try .init(rawRepresentation: privatePart.prefix(32)))
        case "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521":
            _ = try secret.readString()
            _ = try secret.readString()
            let scalar = Array(try secret.readString().drop(while: { $0 == 0 }))
            return try ecdsaKey(type: type, scalar: scalar)
        case "ssh-rsa":
            throw HostKeyError.rsa
        default:
            throw HostKeyError.unsupportedType(type)
        }
    }

    private static func ecdsaKey(type: String, scalar: [UInt8]) throws -> NIOSSHPrivateKey {
        func padded(_ size: Int) -> [UInt8] { [UInt8](repeating: 0, count: max(0, size - scalar.count)) + scalar }
        switch type {
        case "ecdsa-sha2-nistp256": return NIOSSHPrivateKey(p256Key: try .init(rawRepresentation: padded(32)))
        case "ecdsa-sha2-nistp384": return NIOSSHPrivateKey(p384Key: try .init(rawRepresentation: padded(48)))
        default: return NIOSSHPrivateKey(p521Key: try .init(rawRepresentation: padded(66)))
        }
    }

    /// Encodes a key so that `ssh-keygen -y -f FILE` and `berth serve` can read it back.
    static func serialize(_ key: GeneratedHostKey, comment: String) -> String {
        var publicBlob = SSHWireWriter()
        var secret = SSHWireWriter()
        let check = UInt32.random(in: .min ... .max)
        secret.writeUInt32(check)
        secret.writeUInt32(check)
        secret.writeText(key.typeName)
        switch key {
        case .ed25519(let privateKey):
            let publicBytes = Array(privateKey.publicKey.rawRepresentation)
            publicBlob.writeText(key.typeName)
            publicBlob.writeString(publicBytes)
            secret.writeString(publicBytes)
            secret.writeString(Array(privateKey.rawRepresentation) + publicBytes)
        case .p256(let privateKey):
            writeECDSA(curve: "nistp256", point: Array(privateKey.publicKey.x963Representation), scalar: Array(privateKey.rawRepresentation), type: key.typeName, publicBlob: &publicBlob, secret: &secret)
        case .p384(let privateKey):
            writeECDSA(curve: "nistp384", point: Array(privateKey.publicKey.x963Representation), scalar: Array(privateKey.rawRepresentation), type: key.typeName, publicBlob: &publicBlob, secret: &secret)
        case .p521(let privateKey):
            writeECDSA(curve: "nistp521", point: Array(privateKey.publicKey.x963Representation), scalar: Array(privateKey.rawRepresentation), type: key.typeName, publicBlob: &publicBlob, secret: &secret)
        }
        secret.writeText(comment)
        var padding: UInt8 = 1
        while secret.bytes.count % 8 != 0 {
            secret.writeRaw([padding])
            padding += 1
        }
        var file = SSHWireWriter()
        file.writeRaw(magic)
        file.writeText("none")
        file.writeText("none")
        file.writeText("")
        file.writeUInt32(1)
        file.writeString(publicBlob.bytes)
        file.writeString(secret.bytes)
        let body = Data(file.bytes).base64EncodedString()
        var lines = [armorBegin]
        var index = body.startIndex
        while index < body.endIndex {
            let end = body.index(index, offsetBy: 70, limitedBy: body.endIndex) ?? body.endIndex
            lines.append(String(body[index..<end]))
            index = end
        }
        lines.append(armorEnd)
        return lines.joined(separator: "\n") + "\n"
    }

    private static func writeECDSA(curve: String, point: [UInt8], scalar: [UInt8], type: String, publicBlob: inout SSHWireWriter, secret: inout SSHWireWriter) {
        publicBlob.writeText(type)
        publicBlob.writeText(curve)
        publicBlob.writeString(point)
        secret.writeText(curve)
        secret.writeString(point)
        secret.writeMPInt(scalar)
    }
}
