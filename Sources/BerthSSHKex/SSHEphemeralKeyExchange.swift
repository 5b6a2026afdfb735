import BerthSSHWire
import Crypto
import Foundation
import NIOCore

/// The one-round exchanges where both sides send a `string` public value: X25519 (RFC 8731),
/// NIST ECDH (RFC 5656 §4) and the ML-KEM-768 + X25519 hybrid (draft-ietf-sshm-mlkem-hybrid-kex).
/// All take one INIT (30) from the client and answer with one REPLY (31).
struct SSHEphemeralKeyExchange: SSHServerKeyExchange {
    enum Kind {
        case curve25519, p256, p384, p521, mlkem768x25519

        var hash: SSHKexHash {
            switch self {
            case .curve25519, .p256, .mlkem768x25519: return .sha256
            case .p384: return .sha384
            case .p521: return .sha512
            }
        }

        var initName: String { self == .mlkem768x25519 ? "KEX_HYBRID_INIT" : "KEX_ECDH_INIT" }
    }

    static let mlkemPublicKeyLength = 1184
    static let mlkemCiphertextLength = 1088
    static let x25519Length = 32

    let kind: Kind
    let context: SSHKexContext
    var finished = false

    init(kind: Kind, context: SSHKexContext) {
        self.kind = kind
        self.context = context
    }

    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHKexOutput?) {
        guard !finished else {
            throw SSHKexError.unexpected(message.getInteger(at: message.readerIndex, as: UInt8.self), expected: "nothing after the reply")
        }
        var message = message
        try message.readKexMessageNumber(SSHMessageNumber.kexDHInit, name: kind.initName)
        guard let clientValue = message.readSSHStringBytes() else {
            throw SSHKexError.malformed("\(kind.initName) without a complete public value")
        }
        try message.checkKexMessageEnd(name: kind.initName)

        let (serverValue, sharedSecret) = try agree(clientValue: clientValue)

        var transcript = SSHExchangeHashBuilder(context: context)
        transcript.buffer.writeSSHString(clientValue)
        transcript.buffer.writeSSHString(serverValue)
        transcript.buffer.writeBytes(sharedSecret)
        let exchangeHash = kind.hash.digest(transcript.buffer)
        let signature = try SSHExchangeHashBuilder.sign(exchangeHash, context: context)

        var reply = ByteBufferAllocator().buffer(capacity: 16 + transcript.hostKeyBlob.count + serverValue.count + signature.count)
        reply.writeSSHUInt8(SSHMessageNumber.kexDHReply)
        reply.writeSSHString(transcript.hostKeyBlob)
        reply.writeSSHString(serverValue)
        reply.writeSSHString(signature)
        finished = true
        return ([reply], SSHKexOutput(exchangeHash: exchangeHash, sharedSecret: sharedSecret, hash: kind.hash))
    }

    /// The server's public value and K encoded for the hash (mpint for the classic curves,
    /// string for the hybrid).
    private func agree(clientValue: [UInt8]) throws -> (serverValue: [UInt8], sharedSecret: [UInt8]) {
        switch kind {
        case .curve25519:
            let (serverPublic, secret) = try Self.x25519(clientPublic: clientValue)
            // RFC 8731 §3.1: the raw X25519 output read as an unsigned big-endian integer.
            return (serverPublic, Self.mpint(secret))
        case .p256:
            let peer: P256.KeyAgreement.PublicKey
            do { peer = try P256.KeyAgreement.PublicKey(x963Representation: clientValue) } catch {
                throw SSHKexError.badPublicValue("client's nistp256 value is not an uncompressed point on the curve")
            }
            let ours = P256.KeyAgreement.PrivateKey()
            let secret = try Self.ecdh { try ours.sharedSecretFromKeyAgreement(with: peer) }
            return (Array(ours.publicKey.x963Representation), Self.mpint(secret))
        case .p384:
            let peer: P384.KeyAgreement.PublicKey
            do { peer = try P384.KeyAgreement.PublicKey(x963Representation: clientValue) } catch {
                throw SSHKexError.badPublicValue("client's nistp384 value is not an uncompressed point on the curve")
            }
            let ours = P384.KeyAgreement.PrivateKey()
            let secret = try Self.ecdh { try ours.sharedSecretFromKeyAgreement(with: peer) }
            return (Array(ours.publicKey.x963Representation), Self.mpint(secret))
        case .p521:
            let peer: P521.KeyAgreement.PublicKey
            do { peer = try P521.KeyAgreement.PublicKey(x963Representation: clientValue) } catch {
                throw SSHKexError.badPublicValue("client's nistp521 value is not an uncompressed point on the curve")
            }
            let ours = P521.KeyAgreement.PrivateKey()
            let secret = try Self.ecdh { try ours.sharedSecretFromKeyAgreement(with: peer) }
            return (Array(ours.publicKey.x963Representation), Self.mpint(secret))
        case .mlkem768x25519:
            return try hybrid(clientValue: clientValue)
        }
    }

    /// C_INIT = ML-KEM-768 encapsulation key || X25519 public; S_REPLY = ciphertext || X25519
    /// public; K = HASH(ML-KEM shared secret || X25519 shared secret) sent as a `string`.
    private func hybrid(clientValue: [UInt8]) throws -> (serverValue: [UInt8], sharedSecret: [UInt8]) {
        guard clientValue.count == Self.mlkemPublicKeyLength + Self.x25519Length else {
            throw SSHKexError.badPublicValue("client's mlkem768x25519 value has \(clientValue.count) bytes, expected \(Self.mlkemPublicKeyLength + Self.x25519Length)")
        }
        let encapsulationKey: MLKEM768.PublicKey
        do {
            encapsulationKey = try MLKEM768.PublicKey(rawRepresentation: clientValue[..<Self.mlkemPublicKeyLength])
        } catch {
            // FIPS 203 §7.2 input check: coefficients must be reduced modulo q.
            throw SSHKexError.badPublicValue("client's ML-KEM-768 encapsulation key is invalid")
        }
        let encapsulation: KEM.EncapsulationResult
        do { encapsulation = try encapsulationKey.encapsulate() } catch {
            throw SSHKexError.badPublicValue("ML-KEM-768 encapsulation to the client's key failed")
        }
        guard encapsulation.encapsulated.count == Self.mlkemCiphertextLength else {
            throw SSHKexError.make("SSH_KEX_INTERNAL", "ML-KEM-768 ciphertext has \(encapsulation.encapsulated.count) bytes")
        }
        let (serverPublic, x25519Secret) = try Self.x25519(clientPublic: Array(clientValue[Self.mlkemPublicKeyLength...]))
        var combined = encapsulation.sharedSecret.withUnsafeBytes { Array($0) }
        combined.append(contentsOf: x25519Secret)
        let digest = kind.hash.digest(combined)
        for index in combined.indices { combined[index] = 0 }
        var encoded = ByteBufferAllocator().buffer(capacity: 4 + digest.count)
        encoded.writeSSHString(digest)
        return (Array(encapsulation.encapsulated) + serverPublic, Array(encoded.readableBytesView))
    }

    /// A fresh X25519 key pair's public key and the raw shared secret with the client's key.
    private static func x25519(clientPublic: [UInt8]) throws -> ([UInt8], [UInt8]) {
        guard clientPublic.count == x25519Length else {
            throw SSHKexError.badPublicValue("client's X25519 public key has \(clientPublic.count) bytes, expected 32")
        }
        let peer: Curve25519.KeyAgreement.PublicKey
        do { peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: clientPublic) } catch {
            throw SSHKexError.badPublicValue("client's X25519 public key is invalid")
        }
        let ours = Curve25519.KeyAgreement.PrivateKey()
        let secret = try ecdh { try ours.sharedSecretFromKeyAgreement(with: peer) }
        // RFC 7748 §6.1 / RFC 8731 §3: a low-order client point yields all zeros; refuse it.
        guard secret.contains(where: { $0 != 0 }) else {
            throw SSHKexError.badPublicValue("client's X25519 public key is of small order (all-zero shared secret)")
        }
        return (Array(ours.publicKey.rawRepresentation), secret)
    }

    /// Runs an agreement and maps the library's refusal (such as BoringSSL rejecting an
    /// all-zero X25519 result) to the kex error.
    private static func ecdh(_ body: () throws -> SharedSecret) throws -> [UInt8] {
        let secret: SharedSecret
        do { secret = try body() } catch {
            throw SSHKexError.badPublicValue("key agreement with the client's public value failed: \(error)")
        }
        return secret.withUnsafeBytes { Array($0) }
    }

    /// An `mpint` with its length, for a non-negative big-endian magnitude.
    static func mpint(_ magnitude: [UInt8]) -> [UInt8] {
        var buffer = ByteBufferAllocator().buffer(capacity: magnitude.count + 5)
        buffer.writeSSHMPInt(unsignedBigEndian: magnitude)
        return Array(buffer.readableBytesView)
    }
}
