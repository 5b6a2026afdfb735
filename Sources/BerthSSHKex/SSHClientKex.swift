import BerthSSHWire
import Crypto
import NIOCore

// Client-role key exchange: the mirror of the server machines, for the SSH proxy's upstream
// connection. The client cannot judge the host key here (this module has no key parsing); it
// returns the key blob and the signature over H, and the engine verifies both before NEWKEYS.

/// What goes into the client's exchange hash besides the algorithm's values; the host key blob
/// only arrives with the server's reply.
public struct SSHClientKexContext: Sendable {
    public var clientVersion: [UInt8]  // V_C without CR LF
    public var serverVersion: [UInt8]  // V_S
    public var clientKexInit: [UInt8]  // I_C
    public var serverKexInit: [UInt8]  // I_S

    public init(clientVersion: [UInt8], serverVersion: [UInt8], clientKexInit: [UInt8], serverKexInit: [UInt8]) {
        self.clientVersion = clientVersion
        self.serverVersion = serverVersion
        self.clientKexInit = clientKexInit
        self.serverKexInit = serverKexInit
    }
}

/// A finished client-side exchange: the keys' inputs plus what the server proved them with.
public struct SSHClientKexOutput: Sendable {
    public var output: SSHKexOutput
    /// K_S as the server sent it.
    public var hostKeyBlob: [UInt8]
    /// The server's signature blob over H (`string algorithm, string signature`).
    public var signature: [UInt8]
}

public protocol SSHClientKeyExchange {
    /// The message(s) that open the exchange (KEX_ECDH_INIT, KEXDH_INIT, KEX_DH_GEX_REQUEST).
    mutating func start() throws -> [ByteBuffer]
    /// Handles one key exchange message from the server; returns what to send next and, after
    /// the server's reply, the output for the engine to verify.
    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHClientKexOutput?)
}

extension SSHKexAlgorithms {
    public static func makeClient(name: String, context: SSHClientKexContext) throws -> any SSHClientKeyExchange {
        switch name {
        case "mlkem768x25519-sha256":
            return SSHEphemeralClientKeyExchange(kind: .mlkem768x25519, context: context)
        case "curve25519-sha256", "curve25519-sha256@libssh.org":
            return SSHEphemeralClientKeyExchange(kind: .curve25519, context: context)
        case "ecdh-sha2-nistp256":
            return SSHEphemeralClientKeyExchange(kind: .p256, context: context)
        case "ecdh-sha2-nistp384":
            return SSHEphemeralClientKeyExchange(kind: .p384, context: context)
        case "ecdh-sha2-nistp521":
            return SSHEphemeralClientKeyExchange(kind: .p521, context: context)
        case "diffie-hellman-group1-sha1":
            return SSHFixedGroupClientKeyExchange(group: .oakley2, hash: .sha1, context: context)
        case "diffie-hellman-group14-sha1":
            return SSHFixedGroupClientKeyExchange(group: .modp2048, hash: .sha1, context: context)
        case "diffie-hellman-group14-sha256":
            return SSHFixedGroupClientKeyExchange(group: .modp2048, hash: .sha256, context: context)
        case "diffie-hellman-group16-sha512":
            return SSHFixedGroupClientKeyExchange(group: .modp4096, hash: .sha512, context: context)
        case "diffie-hellman-group18-sha512":
            return SSHFixedGroupClientKeyExchange(group: .modp8192, hash: .sha512, context: context)
        case "diffie-hellman-group-exchange-sha256":
            return SSHGroupExchangeClient(hash: .sha256, context: context)
        case "diffie-hellman-group-exchange-sha1":
            return SSHGroupExchangeClient(hash: .sha1, context: context)
        default:
            throw SSHKexError.make("SSH_KEX_UNKNOWN_ALGORITHM", "key exchange algorithm \(name) is not supported")
        }
    }
}

/// Reads `byte number, string K_S, <value>, string signature` from a server's reply, where the
/// value is a `string` (ECDH, hybrid) or an `mpint` (DH), both returned as their body bytes.
private func readServerReply(_ message: ByteBuffer, number: UInt8, name: String) throws -> (hostKey: [UInt8], value: [UInt8], signature: [UInt8]) {
    var message = message
    try message.readKexMessageNumber(number, name: name)
    guard let hostKey = message.readSSHStringBytes(), !hostKey.isEmpty else { throw SSHKexError.malformed("\(name) without a host key") }
    guard let value = message.readSSHStringBytes() else { throw SSHKexError.malformed("\(name) without the server's public value") }
    guard let signature = message.readSSHStringBytes() else { throw SSHKexError.malformed("\(name) without a signature") }
    try message.checkKexMessageEnd(name: name)
    return (hostKey, value, signature)
}

/// X25519, NIST ECDH and the ML-KEM-768 + X25519 hybrid, client side: one INIT out, one REPLY in.
struct SSHEphemeralClientKeyExchange: SSHClientKeyExchange {
    private enum Secret {
        case x25519(Curve25519.KeyAgreement.PrivateKey)
        case p256(P256.KeyAgreement.PrivateKey)
        case p384(P384.KeyAgreement.PrivateKey)
        case p521(P521.KeyAgreement.PrivateKey)
        case hybrid(MLKEM768.PrivateKey, Curve25519.KeyAgreement.PrivateKey)
    }

    let kind: SSHEphemeralKeyExchange.Kind
    let context: SSHClientKexContext
    private var secret: Secret?
    private var clientValue: [UInt8] = []
    private var finished = false

    init(kind: SSHEphemeralKeyExchange.Kind, context: SSHClientKexContext) {
        self.kind = kind
        self.context = context
    }

    private var replyName: String { kind == .mlkem768x25519 ? "KEX_HYBRID_REPLY" : "KEX_ECDH_REPLY" }

    mutating func start() throws -> [ByteBuffer] {
        switch kind {
        case .curve25519:
            let key = Curve25519.KeyAgreement.PrivateKey()
            secret = .x25519(key)
            clientValue = Array(key.publicKey.rawRepresentation)
        case .p256:
            let key = P256.KeyAgreement.PrivateKey()
            secret = .p256(key)
            clientValue = Array(key.publicKey.x963Representation)
        case .p384:
            let key = P384.KeyAgreement.PrivateKey()
            secret = .p384(key)
            clientValue = Array(key.publicKey.x963Representation)
        case .p521:
            let key = P521.KeyAgreement.PrivateKey()
            secret = .p521(key)
            clientValue = Array(key.publicKey.x963Representation)
        case .mlkem768x25519:
            let kem: MLKEM768.PrivateKey
            do { kem = try MLKEM768.PrivateKey() } catch {
                throw SSHKexError.make("SSH_KEX_INTERNAL", "ML-KEM-768 key generation failed: \(error)")
            }
            let x25519 = Curve25519.KeyAgreement.PrivateKey()
            secret = .hybrid(kem, x25519)
            clientValue = Array(kem.publicKey.rawRepresentation) + Array(x25519.publicKey.rawRepresentation)
        }
        var message = ByteBufferAllocator().buffer(capacity: 8 + clientValue.count)
        message.writeSSHUInt8(SSHMessageNumber.kexDHInit)
        message.writeSSHString(clientValue)
        return [message]
    }

    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHClientKexOutput?) {
        guard !finished, let secret else {
            throw SSHKexError.unexpected(message.getInteger(at: message.readerIndex, as: UInt8.self), expected: finished ? "nothing after the reply" : "our INIT first")
        }
        let reply = try readServerReply(message, number: SSHMessageNumber.kexDHReply, name: replyName)
        let sharedSecret = try agree(secret, serverValue: reply.value)
        var transcript = SSHExchangeHashBuilder(context: context, hostKeyBlob: reply.hostKey)
        transcript.buffer.writeSSHString(clientValue)
        transcript.buffer.writeSSHString(reply.value)
        transcript.buffer.writeBytes(sharedSecret)
        let exchangeHash = kind.hash.digest(transcript.buffer)
        finished = true
        self.secret = nil
        return (
            [],
            SSHClientKexOutput(
                output: SSHKexOutput(exchangeHash: exchangeHash, sharedSecret: sharedSecret, hash: kind.hash),
                hostKeyBlob: reply.hostKey, signature: reply.signature)
        )
    }

    /// K encoded for the hash: an mpint for the classic curves, a string for the hybrid.
    private func agree(_ secret: Secret, serverValue: [UInt8]) throws -> [UInt8] {
        switch secret {
        case .x25519(let key):
            return SSHEphemeralKeyExchange.mpint(try Self.x25519(key, serverPublic: serverValue))
        case .p256(let key):
            guard let peer = try? P256.KeyAgreement.PublicKey(x963Representation: serverValue) else {
                throw SSHKexError.badPublicValue("server's nistp256 value is not an uncompressed point on the curve")
            }
            return SSHEphemeralKeyExchange.mpint(try Self.ecdh { try key.sharedSecretFromKeyAgreement(with: peer) })
        case .p384(let key):
            guard let peer = try? P384.KeyAgreement.PublicKey(x963Representation: serverValue) else {
                throw SSHKexError.badPublicValue("server's nistp384 value is not an uncompressed point on the curve")
            }
            return SSHEphemeralKeyExchange.mpint(try Self.ecdh { try key.sharedSecretFromKeyAgreement(with: peer) })
        case .p521(let key):
            guard let peer = try? P521.KeyAgreement.PublicKey(x963Representation: serverValue) else {
                throw SSHKexError.badPublicValue("server's nistp521 value is not an uncompressed point on the curve")
            }
            return SSHEphemeralKeyExchange.mpint(try Self.ecdh { try key.sharedSecretFromKeyAgreement(with: peer) })
        case .hybrid(let kem, let x25519):
            let ciphertextLength = SSHEphemeralKeyExchange.mlkemCiphertextLength
            guard serverValue.count == ciphertextLength + SSHEphemeralKeyExchange.x25519Length else {
                throw SSHKexError.badPublicValue(
                    "server's mlkem768x25519 value has \(serverValue.count) bytes, expected \(ciphertextLength + SSHEphemeralKeyExchange.x25519Length)")
            }
            let kemSecret: SymmetricKey
            do { kemSecret = try kem.decapsulate(serverValue[..<ciphertextLength]) } catch {
                throw SSHKexError.badPublicValue("ML-KEM-768 decapsulation of the server's ciphertext failed")
            }
            let x25519Secret = try Self.x25519(x25519, serverPublic: Array(serverValue[ciphertextLength...]))
            var combined = kemSecret.withUnsafeBytes { Array($0) }
            combined.append(contentsOf: x25519Secret)
            let digest = kind.hash.digest(combined)
            for index in combined.indices { combined[index] = 0 }
            var encoded = ByteBufferAllocator().buffer(capacity: 4 + digest.count)
            encoded.writeSSHString(digest)
            return Array(encoded.readableBytesView)
        }
    }

    private static func x25519(_ key: Curve25519.KeyAgreement.PrivateKey, serverPublic: [UInt8]) throws -> [UInt8] {
        guard serverPublic.count == SSHEphemeralKeyExchange.x25519Length else {
            throw SSHKexError.badPublicValue("server's X25519 public key has \(serverPublic.count) bytes, expected 32")
        }
        guard let peer = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: serverPublic) else {
            throw SSHKexError.badPublicValue("server's X25519 public key is invalid")
        }
        let secret = try ecdh { try key.sharedSecretFromKeyAgreement(with: peer) }
        // RFC 8731 §3: a low-order point gives all zeros; the client must abort too.
        guard secret.contains(where: { $0 != 0 }) else {
            throw SSHKexError.badPublicValue("server's X25519 public key is of small order (all-zero shared secret)")
        }
        return secret
    }

    private static func ecdh(_ body: () throws -> SharedSecret) throws -> [UInt8] {
        let secret: SharedSecret
        do { secret = try body() } catch {
            throw SSHKexError.badPublicValue("key agreement with the server's public value failed: \(error)")
        }
        return secret.withUnsafeBytes { Array($0) }
    }
}

/// diffie-hellman-group{1,14,16,18}-sha*, client side: KEXDH_INIT (30, e) → KEXDH_REPLY (31).
struct SSHFixedGroupClientKeyExchange: SSHClientKeyExchange {
    let group: SSHDHGroup
    let hash: SSHKexHash
    let context: SSHClientKexContext
    private var exchange: SSHDHClientExchange?
    private var finished = false

    init(group: SSHDHGroup, hash: SSHKexHash, context: SSHClientKexContext) {
        self.group = group
        self.hash = hash
        self.context = context
    }

    mutating func start() throws -> [ByteBuffer] {
        let exchange = try SSHDHClientExchange(prime: group.primeBytes, generator: SSHDHGroup.generator, exponentBits: group.exponentBits)
        self.exchange = exchange
        return [exchange.initMessage(number: SSHMessageNumber.kexDHInit)]
    }

    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHClientKexOutput?) {
        guard !finished, var exchange else {
            throw SSHKexError.unexpected(message.getInteger(at: message.readerIndex, as: UInt8.self), expected: "nothing after the reply")
        }
        defer { exchange.clear() }
        let reply = try readServerReply(message, number: SSHMessageNumber.kexDHReply, name: "KEXDH_REPLY")
        let done = try exchange.finish(
            transcript: SSHExchangeHashBuilder(context: context, hostKeyBlob: reply.hostKey), reply: reply, hash: hash)
        finished = true
        self.exchange = nil
        return ([], done)
    }
}

/// diffie-hellman-group-exchange-sha{1,256}, client side (RFC 4419): REQUEST (34, min n max) →
/// GROUP (31, p g) → INIT (32, e) → REPLY (33).
struct SSHGroupExchangeClient: SSHClientKeyExchange {
    /// OpenSSH's client bounds: no group under 2048 bits (RFC 8270), none over 8192.
    static let minimumBits: UInt32 = 2048
    static let preferredBits: UInt32 = 3072
    static let maximumBits: UInt32 = 8192

    private enum State {
        case idle, awaitingGroup
        case awaitingReply(SSHDHClientExchange, prime: [UInt8], generator: [UInt8])
        case finished
    }

    let hash: SSHKexHash
    let context: SSHClientKexContext
    private var state = State.idle

    init(hash: SSHKexHash, context: SSHClientKexContext) {
        self.hash = hash
        self.context = context
    }

    mutating func start() throws -> [ByteBuffer] {
        var request = ByteBufferAllocator().buffer(capacity: 13)
        request.writeSSHUInt8(SSHMessageNumber.kexDHGexRequest)
        request.writeSSHUInt32(Self.minimumBits)
        request.writeSSHUInt32(Self.preferredBits)
        request.writeSSHUInt32(Self.maximumBits)
        state = .awaitingGroup
        return [request]
    }

    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHClientKexOutput?) {
        let number = message.getInteger(at: message.readerIndex, as: UInt8.self)
        switch state {
        case .awaitingGroup:
            var body = message
            try body.readKexMessageNumber(SSHMessageNumber.kexDHReply, name: "KEX_DH_GEX_GROUP")
            guard let p = body.readSSHMPIntBytes(), let g = body.readSSHMPIntBytes() else {
                throw SSHKexError.malformed("KEX_DH_GEX_GROUP without a complete p and g")
            }
            try body.checkKexMessageEnd(name: "KEX_DH_GEX_GROUP")
            guard let prime = SSHMPInt.decodeUnsigned(p), let generator = SSHMPInt.decodeUnsigned(g) else {
                throw SSHKexError.badPublicValue("KEX_DH_GEX_GROUP carries a negative p or g")
            }
            let bits = SSHDHClientExchange.bitLength(prime)
            guard bits >= Int(Self.minimumBits), bits <= Int(Self.maximumBits) else {
                throw SSHKexError.make(
                    "SSH_KEX_GEX_OUT_OF_RANGE", "the server's group has \(bits) bits, outside the requested \(Self.minimumBits)-\(Self.maximumBits)")
            }
            let exchange = try SSHDHClientExchange(prime: prime, generator: generator, exponentBits: 512)
            state = .awaitingReply(exchange, prime: prime, generator: generator)
            return ([exchange.initMessage(number: SSHMessageNumber.kexDHGexInit)], nil)
        case .awaitingReply(var exchange, let prime, let generator):
            defer { exchange.clear() }
            let reply = try readServerReply(message, number: SSHMessageNumber.kexDHGexReply, name: "KEX_DH_GEX_REPLY")
            var transcript = SSHExchangeHashBuilder(context: context, hostKeyBlob: reply.hostKey)
            transcript.buffer.writeSSHUInt32(Self.minimumBits)
            transcript.buffer.writeSSHUInt32(Self.preferredBits)
            transcript.buffer.writeSSHUInt32(Self.maximumBits)
            transcript.buffer.writeSSHMPInt(unsignedBigEndian: prime)
            transcript.buffer.writeSSHMPInt(unsignedBigEndian: generator)
            let done = try exchange.finish(transcript: transcript, reply: reply, hash: hash)
            state = .finished
            return ([], done)
        case .idle, .finished:
            throw SSHKexError.unexpected(number, expected: "nothing outside the group exchange")
        }
    }
}
