import BerthSSHWire
import COpenSSL
import NIOCore

// Finite-field Diffie-Hellman: the fixed groups of RFC 4253 §8 / RFC 8268 and group exchange
// (RFC 4419). swift-crypto has no modular exponentiation, so the arithmetic is OpenSSL's BIGNUM
// with its constant-time Montgomery exponentiation; all BIGNUMs live only inside one call and
// the secret ones are cleared on release.

/// The MODP groups Berth offers, all with generator 2. The primes come from OpenSSL's built-in
/// copies of RFC 2409 §6.2 (Oakley group 2) and RFC 3526 (groups 14-18).
enum SSHDHGroup: CaseIterable, Sendable {
    case oakley2, modp2048, modp3072, modp4096, modp6144, modp8192

    var bits: Int {
        switch self {
        case .oakley2: return 1024
        case .modp2048: return 2048
        case .modp3072: return 3072
        case .modp4096: return 4096
        case .modp6144: return 6144
        case .modp8192: return 8192
        }
    }

    /// Groups group exchange may hand out: 3072 bits and up. RFC 8270 allows 2048, but that gives
    /// only 112 bits of strength and auditors (ssh-audit) flag a server that hands it out; a
    /// client that can do no more still has diffie-hellman-group14-sha256.
    static let exchangeable: [SSHDHGroup] = [.modp3072, .modp4096, .modp6144, .modp8192]

    /// A fresh BIGNUM holding p; the caller frees it.
    func makePrime() -> OpaquePointer? {
        switch self {
        case .oakley2: return BN_get_rfc2409_prime_1024(nil)
        case .modp2048: return BN_get_rfc3526_prime_2048(nil)
        case .modp3072: return BN_get_rfc3526_prime_3072(nil)
        case .modp4096: return BN_get_rfc3526_prime_4096(nil)
        case .modp6144: return BN_get_rfc3526_prime_6144(nil)
        case .modp8192: return BN_get_rfc3526_prime_8192(nil)
        }
    }

    static let generator: [UInt8] = [2]

    /// p as big-endian magnitude bytes.
    var primeBytes: [UInt8] {
        guard let p = makePrime() else { return [] }
        defer { BN_free(p) }
        return SSHDiffieHellman.bytes(of: p)
    }

    /// The private exponent's size. RFC 8268 §4 asks for at least twice the group's security
    /// strength; OpenSSH uses twice the session key size with a floor of 512 bits. 512 bits is
    /// more than twice the strength of every group here (8192 bits is about 200 bits strong) and
    /// matches OpenSSH's floor, while keeping the 8192-bit exponentiations affordable.
    var exponentBits: Int32 { Int32(Swift.min(512, bits - 1)) }
}

enum SSHDiffieHellman {
    /// The server half of one DH exchange in `group`: checks the client's e (given as the body of
    /// its mpint), makes y and f = g^y mod p, and K = e^y mod p. Returns f and K as big-endian
    /// magnitudes.
    static func serverExchange(group: SSHDHGroup, clientValue e: [UInt8]) throws -> (f: [UInt8], sharedSecret: [UInt8]) {
        guard let magnitude = SSHMPInt.decodeUnsigned(e) else {
            throw SSHKexError.badPublicValue("client's DH value e is negative")
        }
        // A canonical mpint carries at most one leading zero, and only before a set top bit;
        // anything else would make our re-encoding (and so the hash) differ from the client's.
        if e.count >= 2, e[0] == 0, e[1] & 0x80 == 0 {
            throw SSHKexError.malformed("client's DH value e is not a minimal mpint")
        }
        guard magnitude.count <= (group.bits + 7) / 8 else {
            throw SSHKexError.badPublicValue("client's DH value e is longer than the \(group.bits)-bit modulus")
        }

        guard let context = BN_CTX_secure_new() else { throw internalError("BN_CTX_secure_new") }
        defer { BN_CTX_free(context) }
        guard let p = group.makePrime() else { throw internalError("group prime") }
        defer { BN_free(p) }
        guard let g = BN_new(), let pMinusOne = BN_dup(p), let clientE = BN_new() else { throw internalError("BN_new") }
        defer { BN_free(g); BN_free(pMinusOne); BN_free(clientE) }
        guard BN_set_word(g, 2) == 1, BN_sub_word(pMinusOne, 1) == 1,
            BN_bin2bn(magnitude, Int32(magnitude.count), clientE) != nil
        else { throw internalError("BN setup") }

        // RFC 4253 §8: values outside [2, p-2] would let the client force K into {0, 1, p-1}.
        guard BN_cmp(clientE, BN_value_one()) > 0, BN_cmp(clientE, pMinusOne) < 0 else {
            throw SSHKexError.badPublicValue("client's DH value e is outside 1 < e < p-1")
        }

        guard let y = BN_secure_new(), let f = BN_new(), let k = BN_secure_new() else { throw internalError("BN_secure_new") }
        defer { BN_clear_free(y); BN_free(f); BN_clear_free(k) }
        // Top bit forced so y has exactly exponentBits bits and is never 0 or 1.
        guard BN_priv_rand(y, group.exponentBits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1 else {
            throw internalError("BN_priv_rand")
        }
        BN_set_flags(y, BN_FLG_CONSTTIME)
        guard BN_mod_exp_mont_consttime(f, g, y, p, context, nil) == 1,
            BN_mod_exp_mont_consttime(k, clientE, y, p, context, nil) == 1
        else {
            throw internalError("BN_mod_exp_mont_consttime")
        }
        // K = 1 or p-1 only arises from a small-subgroup e that the range check did not catch;
        // the safe-prime groups have no other small subgroups.
        guard BN_is_one(k) == 0, BN_cmp(k, pMinusOne) != 0 else {
            throw SSHKexError.badPublicValue("client's DH value e lies in a small subgroup")
        }
        return (bytes(of: f), bytes(of: k))
    }

    static func bytes(of number: OpaquePointer) -> [UInt8] {
        let count = Int((BN_num_bits(number) + 7) / 8)
        var out = [UInt8](repeating: 0, count: count)
        if count > 0 { _ = BN_bn2bin(number, &out) }
        return out
    }

    static func internalError(_ step: String) -> SSHProtocolError {
        SSHKexError.make("SSH_KEX_INTERNAL", "libcrypto failed at \(step)")
    }

    /// Reads the client's e from an INIT message (`byte number, mpint e`).
    static func readClientValue(_ message: ByteBuffer, number: UInt8, name: String) throws -> [UInt8] {
        var message = message
        try message.readKexMessageNumber(number, name: name)
        guard let e = message.readSSHMPIntBytes() else { throw SSHKexError.malformed("\(name) without a complete mpint e") }
        try message.checkKexMessageEnd(name: name)
        return e
    }

    /// The reply (`byte number, string K_S, mpint f, string signature`) and the output, once
    /// the algorithm-specific fields (group exchange's request and group) are in `transcript`.
    static func finish(
        transcript: SSHExchangeHashBuilder, group: SSHDHGroup, clientValue e: [UInt8],
        hash: SSHKexHash, replyNumber: UInt8, context: SSHKexContext
    ) throws -> (replies: [ByteBuffer], done: SSHKexOutput?) {
        let (f, secret) = try serverExchange(group: group, clientValue: e)
        var transcript = transcript
        transcript.buffer.writeSSHString(e)
        transcript.buffer.writeSSHMPInt(unsignedBigEndian: f)
        let sharedSecret = SSHEphemeralKeyExchange.mpint(secret)
        transcript.buffer.writeBytes(sharedSecret)
        let exchangeHash = hash.digest(transcript.buffer)
        let signature = try SSHExchangeHashBuilder.sign(exchangeHash, context: context)

        var reply = ByteBufferAllocator().buffer(capacity: 20 + transcript.hostKeyBlob.count + f.count + signature.count)
        reply.writeSSHUInt8(replyNumber)
        reply.writeSSHString(transcript.hostKeyBlob)
        reply.writeSSHMPInt(unsignedBigEndian: f)
        reply.writeSSHString(signature)
        return ([reply], SSHKexOutput(exchangeHash: exchangeHash, sharedSecret: sharedSecret, hash: hash))
    }
}

/// diffie-hellman-group{1,14,16,18}-sha*: KEXDH_INIT (30, mpint e) → KEXDH_REPLY (31).
struct SSHFixedGroupKeyExchange: SSHServerKeyExchange {
    let group: SSHDHGroup
    let hash: SSHKexHash
    let context: SSHKexContext
    var finished = false

    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHKexOutput?) {
        guard !finished else {
            throw SSHKexError.unexpected(message.getInteger(at: message.readerIndex, as: UInt8.self), expected: "nothing after the reply")
        }
        let e = try SSHDiffieHellman.readClientValue(message, number: SSHMessageNumber.kexDHInit, name: "KEXDH_INIT")
        let result = try SSHDiffieHellman.finish(
            transcript: SSHExchangeHashBuilder(context: context), group: group, clientValue: e,
            hash: hash, replyNumber: SSHMessageNumber.kexDHReply, context: context)
        finished = true
        return result
    }
}

/// diffie-hellman-group-exchange-sha{1,256} (RFC 4419): KEX_DH_GEX_REQUEST (34, min n max) or
/// the old KEX_DH_GEX_REQUEST_OLD (30, n) → KEX_DH_GEX_GROUP (31, p g); KEX_DH_GEX_INIT (32, e)
/// → KEX_DH_GEX_REPLY (33).
struct SSHGroupExchange: SSHServerKeyExchange {
    enum State {
        case awaitingRequest
        /// `requestFields` are the request's integers as they enter the hash (min n max, or n alone).
        case awaitingInit(group: SSHDHGroup, requestFields: [UInt32])
        case finished
    }

    let hash: SSHKexHash
    let context: SSHKexContext
    var state = State.awaitingRequest

    init(hash: SSHKexHash, context: SSHKexContext) {
        self.hash = hash
        self.context = context
    }

    /// The group for a request: the smallest offered group of at least n bits (capped at 8192),
    /// within [min, max]; failing that, the largest group within [min, max]. Nil when no group fits.
    static func chooseGroup(min: UInt32, preferred: UInt32, max: UInt32) -> SSHDHGroup? {
        let groups = SSHDHGroup.exchangeable
        let target = Swift.min(Int(preferred), 8192)
        let fitting = groups.filter { $0.bits >= Int(min) && $0.bits <= Int(max) }
        return fitting.first(where: { $0.bits >= target }) ?? fitting.last
    }

    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHKexOutput?) {
        let number = message.getInteger(at: message.readerIndex, as: UInt8.self)
        switch state {
        case .awaitingRequest:
            var body = message
            _ = body.readSSHUInt8()
            let fields: [UInt32]
            let min: UInt32, preferred: UInt32, max: UInt32
            switch number {
            case SSHMessageNumber.kexDHGexRequest:
                guard let a = body.readSSHUInt32(), let b = body.readSSHUInt32(), let c = body.readSSHUInt32() else {
                    throw SSHKexError.malformed("KEX_DH_GEX_REQUEST shorter than min, n, max")
                }
                try body.checkKexMessageEnd(name: "KEX_DH_GEX_REQUEST")
                guard a <= b, b <= c else {
                    throw SSHKexError.make("SSH_KEX_GEX_OUT_OF_RANGE", "KEX_DH_GEX_REQUEST asks for min \(a), n \(b), max \(c), which is not min <= n <= max")
                }
                (min, preferred, max) = (a, b, c)
                fields = [a, b, c]
            case SSHMessageNumber.kexDHInit:
                // RFC 4419 §5: the pre-standard request carried n only, and only n enters the hash.
                guard let n = body.readSSHUInt32() else { throw SSHKexError.malformed("KEX_DH_GEX_REQUEST_OLD without n") }
                try body.checkKexMessageEnd(name: "KEX_DH_GEX_REQUEST_OLD")
                (min, preferred, max) = (0, n, UInt32.max)
                fields = [n]
            default:
                throw SSHKexError.unexpected(number, expected: "KEX_DH_GEX_REQUEST (34)")
            }
            guard let group = Self.chooseGroup(min: min, preferred: preferred, max: max) else {
                throw SSHKexError.make("SSH_KEX_GEX_NO_GROUP", "no group between \(min) and \(max) bits (offered: 3072-8192; diffie-hellman-group14-sha256 has 2048)")
            }
            var reply = ByteBufferAllocator().buffer(capacity: 16 + group.bits / 8)
            reply.writeSSHUInt8(SSHMessageNumber.kexDHReply)  // KEX_DH_GEX_GROUP shares 31
            reply.writeSSHMPInt(unsignedBigEndian: group.primeBytes)
            reply.writeSSHMPInt(unsignedBigEndian: SSHDHGroup.generator)
            state = .awaitingInit(group: group, requestFields: fields)
            return ([reply], nil)

        case .awaitingInit(let group, let fields):
            let e = try SSHDiffieHellman.readClientValue(message, number: SSHMessageNumber.kexDHGexInit, name: "KEX_DH_GEX_INIT")
            var transcript = SSHExchangeHashBuilder(context: context)
            for field in fields { transcript.buffer.writeSSHUInt32(field) }
            transcript.buffer.writeSSHMPInt(unsignedBigEndian: group.primeBytes)
            transcript.buffer.writeSSHMPInt(unsignedBigEndian: SSHDHGroup.generator)
            let result = try SSHDiffieHellman.finish(
                transcript: transcript, group: group, clientValue: e, hash: hash,
                replyNumber: SSHMessageNumber.kexDHGexReply, context: context)
            state = .finished
            return result

        case .finished:
            throw SSHKexError.unexpected(number, expected: "nothing after KEX_DH_GEX_REPLY")
        }
    }
}

/// The client half of one DH exchange in the group (p, g): a private x, e = g^x mod p sent to the
/// server, and K = f^x mod p from the server's f. x is kept as bytes between the two steps (the
/// BIGNUMs still live only inside one call) and cleared by `clear()`.
struct SSHDHClientExchange {
    let prime: [UInt8]
    let generator: [UInt8]
    private var x: [UInt8]
    /// e as a big-endian magnitude.
    let e: [UInt8]

    init(prime: [UInt8], generator: [UInt8], exponentBits: Int32) throws {
        self.prime = prime
        self.generator = generator
        guard let context = BN_CTX_secure_new() else { throw SSHDiffieHellman.internalError("BN_CTX_secure_new") }
        defer { BN_CTX_free(context) }
        guard let p = BN_new(), let g = BN_new(), let pMinusOne = BN_new() else { throw SSHDiffieHellman.internalError("BN_new") }
        defer { BN_free(p); BN_free(g); BN_free(pMinusOne) }
        guard BN_bin2bn(prime, Int32(prime.count), p) != nil, BN_bin2bn(generator, Int32(generator.count), g) != nil,
            BN_copy(pMinusOne, p) != nil, BN_sub_word(pMinusOne, 1) == 1
        else { throw SSHDiffieHellman.internalError("BN setup") }
        // A generator of 0, 1 or p-1 (or beyond p) would make K predictable.
        guard BN_cmp(g, BN_value_one()) > 0, BN_cmp(g, pMinusOne) < 0 else {
            throw SSHKexError.badPublicValue("the group's generator is outside 1 < g < p-1")
        }
        guard let xNumber = BN_secure_new(), let eNumber = BN_new() else { throw SSHDiffieHellman.internalError("BN_secure_new") }
        defer { BN_clear_free(xNumber); BN_free(eNumber) }
        guard BN_priv_rand(xNumber, exponentBits, BN_RAND_TOP_ONE, BN_RAND_BOTTOM_ANY) == 1 else {
            throw SSHDiffieHellman.internalError("BN_priv_rand")
        }
        BN_set_flags(xNumber, BN_FLG_CONSTTIME)
        guard BN_mod_exp_mont_consttime(eNumber, g, xNumber, p, context, nil) == 1 else {
            throw SSHDiffieHellman.internalError("BN_mod_exp_mont_consttime")
        }
        x = SSHDiffieHellman.bytes(of: xNumber)
        e = SSHDiffieHellman.bytes(of: eNumber)
    }

    static func bitLength(_ magnitude: [UInt8]) -> Int {
        guard let first = magnitude.firstIndex(where: { $0 != 0 }) else { return 0 }
        return (magnitude.count - first) * 8 - magnitude[first].leadingZeroBitCount
    }

    func initMessage(number: UInt8) -> ByteBuffer {
        var message = ByteBufferAllocator().buffer(capacity: 8 + e.count)
        message.writeSSHUInt8(number)
        message.writeSSHMPInt(unsignedBigEndian: e)
        return message
    }

    mutating func clear() {
        for index in x.indices { x[index] = 0 }
    }

    /// Checks f, computes K and H (the algorithm's own fields already in `transcript`).
    func finish(
        transcript: SSHExchangeHashBuilder, reply: (hostKey: [UInt8], value: [UInt8], signature: [UInt8]), hash: SSHKexHash
    ) throws -> SSHClientKexOutput {
        let f = reply.value
        guard let magnitude = SSHMPInt.decodeUnsigned(f) else { throw SSHKexError.badPublicValue("server's DH value f is negative") }
        guard let context = BN_CTX_secure_new() else { throw SSHDiffieHellman.internalError("BN_CTX_secure_new") }
        defer { BN_CTX_free(context) }
        guard let p = BN_new(), let pMinusOne = BN_new(), let serverF = BN_new() else { throw SSHDiffieHellman.internalError("BN_new") }
        defer { BN_free(p); BN_free(pMinusOne); BN_free(serverF) }
        guard BN_bin2bn(prime, Int32(prime.count), p) != nil, BN_copy(pMinusOne, p) != nil, BN_sub_word(pMinusOne, 1) == 1,
            BN_bin2bn(magnitude, Int32(magnitude.count), serverF) != nil
        else { throw SSHDiffieHellman.internalError("BN setup") }
        // RFC 4253 §8: the client checks f as the server checks e.
        guard BN_cmp(serverF, BN_value_one()) > 0, BN_cmp(serverF, pMinusOne) < 0 else {
            throw SSHKexError.badPublicValue("server's DH value f is outside 1 < f < p-1")
        }
        guard let xNumber = BN_secure_new(), let k = BN_secure_new() else { throw SSHDiffieHellman.internalError("BN_secure_new") }
        defer { BN_clear_free(xNumber); BN_clear_free(k) }
        guard BN_bin2bn(x, Int32(x.count), xNumber) != nil else { throw SSHDiffieHellman.internalError("BN_bin2bn") }
        BN_set_flags(xNumber, BN_FLG_CONSTTIME)
        guard BN_mod_exp_mont_consttime(k, serverF, xNumber, p, context, nil) == 1 else {
            throw SSHDiffieHellman.internalError("BN_mod_exp_mont_consttime")
        }
        guard BN_is_one(k) == 0, BN_cmp(k, pMinusOne) != 0 else {
            throw SSHKexError.badPublicValue("server's DH value f lies in a small subgroup")
        }
        var transcript = transcript
        transcript.buffer.writeSSHMPInt(unsignedBigEndian: e)
        transcript.buffer.writeSSHMPInt(unsignedBigEndian: magnitude)
        let sharedSecret = SSHEphemeralKeyExchange.mpint(SSHDiffieHellman.bytes(of: k))
        transcript.buffer.writeBytes(sharedSecret)
        return SSHClientKexOutput(
            output: SSHKexOutput(exchangeHash: hash.digest(transcript.buffer), sharedSecret: sharedSecret, hash: hash),
            hostKeyBlob: reply.hostKey, signature: reply.signature)
    }
}
