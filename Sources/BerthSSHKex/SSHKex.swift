import BerthSSHWire
import Crypto
import NIOCore

// Key exchange (docs/ssh-engine.md, "BerthSSHKex"), both roles. Each algorithm is a small state
// machine fed the peer's kex messages by the engine; it answers with the reply payloads and,
// at the end, the exchange hash H and the shared secret K exactly as they go into the hash, which
// is what key derivation needs. The host key is only reached through `SSHHostKeySigner`, so this
// module never sees a private host key.

public enum SSHKexAlgorithms {
    /// Berth's default preference order: the post-quantum hybrid first (OpenSSH 9.9+ default),
    /// then the elliptic curves, then finite-field groups of at least 2048 bits.
    public static let defaults: [String] = [
        "mlkem768x25519-sha256",
        "curve25519-sha256",
        "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256",
        "ecdh-sha2-nistp384",
        "ecdh-sha2-nistp521",
        "diffie-hellman-group-exchange-sha256",
        "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512",
        "diffie-hellman-group14-sha256",
    ]

    /// Everything this build can do; the SHA-1 and 1024-bit ones only when configured, for old clients.
    public static let supported: [String] =
        defaults + [
            "diffie-hellman-group14-sha1",
            "diffie-hellman-group1-sha1",
            "diffie-hellman-group-exchange-sha1",
        ]

    public static func makeServer(name: String, context: SSHKexContext) throws -> any SSHServerKeyExchange {
        switch name {
        case "mlkem768x25519-sha256":
            return SSHEphemeralKeyExchange(kind: .mlkem768x25519, context: context)
        case "curve25519-sha256", "curve25519-sha256@libssh.org":
            return SSHEphemeralKeyExchange(kind: .curve25519, context: context)
        case "ecdh-sha2-nistp256":
            return SSHEphemeralKeyExchange(kind: .p256, context: context)
        case "ecdh-sha2-nistp384":
            return SSHEphemeralKeyExchange(kind: .p384, context: context)
        case "ecdh-sha2-nistp521":
            return SSHEphemeralKeyExchange(kind: .p521, context: context)
        case "diffie-hellman-group1-sha1":
            return SSHFixedGroupKeyExchange(group: .oakley2, hash: .sha1, context: context)
        case "diffie-hellman-group14-sha1":
            return SSHFixedGroupKeyExchange(group: .modp2048, hash: .sha1, context: context)
        case "diffie-hellman-group14-sha256":
            return SSHFixedGroupKeyExchange(group: .modp2048, hash: .sha256, context: context)
        case "diffie-hellman-group16-sha512":
            return SSHFixedGroupKeyExchange(group: .modp4096, hash: .sha512, context: context)
        case "diffie-hellman-group18-sha512":
            return SSHFixedGroupKeyExchange(group: .modp8192, hash: .sha512, context: context)
        case "diffie-hellman-group-exchange-sha256":
            return SSHGroupExchange(hash: .sha256, context: context)
        case "diffie-hellman-group-exchange-sha1":
            return SSHGroupExchange(hash: .sha1, context: context)
        default:
            throw SSHKexError.make("SSH_KEX_UNKNOWN_ALGORITHM", "key exchange algorithm \(name) is not supported")
        }
    }
}

/// What goes into the exchange hash besides the algorithm's own values (RFC 4253 §8).
public struct SSHKexContext: Sendable {
    public var clientVersion: [UInt8]  // V_C without CR LF
    public var serverVersion: [UInt8]  // V_S
    public var clientKexInit: [UInt8]  // I_C, the whole KEXINIT payload
    public var serverKexInit: [UInt8]  // I_S
    public var hostKey: any SSHHostKeySigner
    public var hostKeyAlgorithm: String  // negotiated, e.g. "rsa-sha2-512"

    public init(
        clientVersion: [UInt8], serverVersion: [UInt8], clientKexInit: [UInt8], serverKexInit: [UInt8],
        hostKey: any SSHHostKeySigner, hostKeyAlgorithm: String
    ) {
        self.clientVersion = clientVersion
        self.serverVersion = serverVersion
        self.clientKexInit = clientKexInit
        self.serverKexInit = serverKexInit
        self.hostKey = hostKey
        self.hostKeyAlgorithm = hostKeyAlgorithm
    }
}

public protocol SSHServerKeyExchange {
    /// Handles one key exchange message from the client (payload including its message number,
    /// 30…49). Returns the payloads to send back (KEX_ECDH_REPLY; for group exchange first
    /// KEX_DH_GEX_GROUP, then KEX_DH_GEX_REPLY) and, once the exchange is complete, its output.
    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHKexOutput?)
}

public struct SSHKexOutput: Sendable {
    public var exchangeHash: [UInt8]  // H
    public var sharedSecret: [UInt8]  // K exactly as encoded into the hash (mpint or string, with length)
    public var hash: SSHKexHash  // the kex's hash function

    public init(exchangeHash: [UInt8], sharedSecret: [UInt8], hash: SSHKexHash) {
        self.exchangeHash = exchangeHash
        self.sharedSecret = sharedSecret
        self.hash = hash
    }
}

public enum SSHKexHash: Sendable {
    case sha1, sha256, sha384, sha512

    public func digest(_ data: [UInt8]) -> [UInt8] {
        switch self {
        case .sha1: return Array(Insecure.SHA1.hash(data: data))
        case .sha256: return Array(SHA256.hash(data: data))
        case .sha384: return Array(SHA384.hash(data: data))
        case .sha512: return Array(SHA512.hash(data: data))
        }
    }

    /// The digest of a buffer's readable bytes, without copying them out first.
    public func digest(_ buffer: ByteBuffer) -> [UInt8] {
        buffer.withUnsafeReadableBytes { bytes in
            switch self {
            case .sha1: return Array(Insecure.SHA1.hash(data: bytes))
            case .sha256: return Array(SHA256.hash(data: bytes))
            case .sha384: return Array(SHA384.hash(data: bytes))
            case .sha512: return Array(SHA512.hash(data: bytes))
            }
        }
    }

    public var digestLength: Int {
        switch self {
        case .sha1: return 20
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        }
    }
}

public enum SSHKeyDerivation {
    /// RFC 4253 §7.2: HASH(K || H || letter || session_id), extended to `length` by appending
    /// HASH(K || H || K1 || … || Kn) blocks.
    public static func derive(hash: SSHKexHash, sharedSecret: [UInt8], exchangeHash: [UInt8], sessionID: [UInt8], letter: UInt8, length: Int) -> [UInt8] {
        guard length > 0 else { return [] }
        var input = sharedSecret + exchangeHash
        let prefixLength = input.count
        input.append(letter)
        input.append(contentsOf: sessionID)
        var key = hash.digest(input)
        if key.count < length {
            input.removeSubrange(prefixLength...)
            input.append(contentsOf: key)
            while key.count < length {
                let block = hash.digest(input)
                key.append(contentsOf: block)
                input.append(contentsOf: block)
            }
            // K and H appear in the scratch buffer; scrub it rather than leave it to the allocator.
            for index in input.indices { input[index] = 0 }
        }
        return Array(key.prefix(length))
    }
}

/// Error construction shared by the algorithms: every kex failure ends the connection with
/// "key exchange failed" (RFC 4253 §11.1 reason 3).
enum SSHKexError {
    static func make(_ code: String, _ message: String) -> SSHProtocolError {
        SSHProtocolError(code, message, disconnectReason: SSHDisconnectReason.keyExchangeFailed)
    }

    static func badPublicValue(_ message: String) -> SSHProtocolError {
        make("SSH_KEX_BAD_PUBLIC_VALUE", message)
    }

    static func malformed(_ message: String) -> SSHProtocolError {
        make("SSH_KEX_MALFORMED_MESSAGE", message)
    }

    static func unexpected(_ number: UInt8?, expected: String) -> SSHProtocolError {
        make("SSH_KEX_UNEXPECTED_MESSAGE", "unexpected key exchange message \(number.map(String.init) ?? "(empty)"), expected \(expected)")
    }
}

/// The fields every exchange hash starts with (RFC 4253 §8, RFC 5656 §4, RFC 4419 §3) and the
/// signing of the finished hash.
struct SSHExchangeHashBuilder {
    var buffer: ByteBuffer
    let hostKeyBlob: [UInt8]

    init(context: SSHKexContext) {
        self.init(
            clientVersion: context.clientVersion, serverVersion: context.serverVersion,
            clientKexInit: context.clientKexInit, serverKexInit: context.serverKexInit,
            hostKeyBlob: context.hostKey.publicKeyBlob)
    }

    /// The client's transcript: the host key blob is the one the server's reply carried.
    init(context: SSHClientKexContext, hostKeyBlob: [UInt8]) {
        self.init(
            clientVersion: context.clientVersion, serverVersion: context.serverVersion,
            clientKexInit: context.clientKexInit, serverKexInit: context.serverKexInit, hostKeyBlob: hostKeyBlob)
    }

    private init(clientVersion: [UInt8], serverVersion: [UInt8], clientKexInit: [UInt8], serverKexInit: [UInt8], hostKeyBlob: [UInt8]) {
        self.hostKeyBlob = hostKeyBlob
        let size =
            20 + clientVersion.count + serverVersion.count + clientKexInit.count
            + serverKexInit.count + hostKeyBlob.count + 2 * 1300
        buffer = ByteBufferAllocator().buffer(capacity: size)
        buffer.writeSSHString(clientVersion)
        buffer.writeSSHString(serverVersion)
        buffer.writeSSHString(clientKexInit)
        buffer.writeSSHString(serverKexInit)
        buffer.writeSSHString(hostKeyBlob)
    }

    static func sign(_ exchangeHash: [UInt8], context: SSHKexContext) throws -> [UInt8] {
        do {
            return try context.hostKey.sign(exchangeHash, algorithm: context.hostKeyAlgorithm)
        } catch let error as SSHProtocolError {
            throw error
        } catch {
            throw SSHKexError.make("SSH_KEX_SIGN_FAILED", "host key could not sign with \(context.hostKeyAlgorithm): \(error)")
        }
    }
}

extension ByteBuffer {
    /// Reads the message number and checks it; the kex message parsers all start this way.
    mutating func readKexMessageNumber(_ expected: UInt8, name: String) throws {
        let number = readSSHUInt8()
        guard number == expected else { throw SSHKexError.unexpected(number, expected: "\(name) (\(expected))") }
    }

    func checkKexMessageEnd(name: String) throws {
        guard readableBytes == 0 else { throw SSHKexError.malformed("\(readableBytes) bytes after the end of \(name)") }
    }
}
