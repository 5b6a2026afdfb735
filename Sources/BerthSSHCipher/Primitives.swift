import BerthSSHWire
import COpenSSL
import Crypto
import CryptoExtras
import Foundation
import NIOCore

// Thin wrappers that give the packet code one shape per primitive: in-place transforms over raw
// memory, so a packet is encrypted where it was laid out in the output buffer.

// MARK: errors

enum CipherErrors {
    static func badLength(_ length: UInt32) -> SSHProtocolError {
        SSHProtocolError("SSH_BAD_PACKET_LENGTH", "packet length \(length) is impossible or above \(SSHCipherSuite.maxPacketLength)")
    }
    static func badPadding(_ padding: Int, packetLength: Int) -> SSHProtocolError {
        SSHProtocolError("SSH_BAD_PADDING", "padding length \(padding) is below 4 or not below packet length \(packetLength)")
    }
    static let mac = SSHProtocolError("SSH_MAC_ERROR", "message authentication failed", disconnectReason: SSHDisconnectReason.macError)
    static func payloadTooLarge(_ count: Int) -> SSHProtocolError {
        SSHProtocolError("SSH_PAYLOAD_TOO_LARGE", "payload of \(count) bytes exceeds \(SSHCipherSuite.maxPayloadLength)")
    }
    static func crypto(_ what: String) -> SSHProtocolError {
        SSHProtocolError("SSH_CRYPTO_FAILURE", what)
    }
}

// MARK: packet layout

/// Where padding bytes come from: random on the wire; fixed in tests that compare packets byte for
/// byte with another implementation.
enum PaddingFill {
    case random
    case fixed(UInt8)

    func fill(_ bytes: UnsafeMutableRawBufferPointer) {
        switch self {
        case .fixed(let value):
            if let base = bytes.baseAddress { memset(base, Int32(value), bytes.count) }
        case .random:
            var rng = SystemRandomNumberGenerator()
            var offset = 0
            while offset < bytes.count {
                let word = rng.next() as UInt64
                let n = min(8, bytes.count - offset)
                withUnsafeBytes(of: word) { bytes.baseAddress!.advanced(by: offset).copyMemory(from: $0.baseAddress!, byteCount: n) }
                offset += n
            }
        }
    }
}

enum PacketLayout {
    /// RFC 4253 §6: at least 4 bytes, making the covered part a multiple of the block size.
    /// `lengthCovered` is false for encrypt-then-MAC and AEAD, whose length field stays outside the
    /// block-aligned part. Minimal padding, as OpenSSH sends.
    static func paddingLength(payload: Int, blockSize: Int, lengthCovered: Bool) -> Int {
        let unpadded = (lengthCovered ? 5 : 1) + payload
        var padding = blockSize - unpadded % blockSize
        if padding < 4 { padding += blockSize }
        return padding
    }

    /// Appends uint32 packet_length, byte padding_length, payload, padding to `out`, reserving
    /// `trailer` more bytes for the MAC/tag so appending it does not reallocate. Returns the index
    /// of the packet's first byte and its packet_length.
    static func writePlain(
        payload: ByteBuffer, blockSize: Int, lengthCovered: Bool, trailer: Int,
        padding fill: PaddingFill, into out: inout ByteBuffer
    ) throws -> (start: Int, packetLength: Int) {
        let count = payload.readableBytes
        guard count <= SSHCipherSuite.maxPayloadLength else { throw CipherErrors.payloadTooLarge(count) }
        let padding = paddingLength(payload: count, blockSize: blockSize, lengthCovered: lengthCovered)
        let packetLength = 1 + count + padding
        out.reserveCapacity(minimumWritableBytes: 4 + packetLength + trailer)
        let start = out.writerIndex
        out.writeInteger(UInt32(packetLength), endianness: .big)
        out.writeInteger(UInt8(padding))
        out.writeImmutableBuffer(payload)
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: padding) { bytes in
            fill.fill(UnsafeMutableRawBufferPointer(rebasing: bytes[0..<padding]))
            return padding
        }
        return (start, packetLength)
    }

    /// The length checks every opener applies before waiting for the rest of a packet.
    /// `alignedLength` is the part that must be a multiple of `blockSize`.
    static func checkLength(_ packetLength: UInt32, blockSize: Int, lengthCovered: Bool) throws {
        let length = Int(packetLength)
        guard length >= 5, length <= SSHCipherSuite.maxPacketLength,
            (length + (lengthCovered ? 4 : 0)) % blockSize == 0
        else {
            throw CipherErrors.badLength(packetLength)
        }
    }

    /// `plain` holds padding_length || payload || padding (packet_length bytes). Returns the payload
    /// range relative to the start of `plain`.
    static func payloadRange(paddingLength: UInt8, packetLength: Int) throws -> Range<Int> {
        let padding = Int(paddingLength)
        guard padding >= 4, padding < packetLength else {
            throw CipherErrors.badPadding(padding, packetLength: packetLength)
        }
        return 1..<(packetLength - padding)
    }
}

/// The mutable bytes `out[start..<start+count]`, whatever `out`'s reader index is.
@inline(__always)
func withMutableRegion<R>(_ out: inout ByteBuffer, at start: Int, count: Int, _ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
    let offset = start - out.readerIndex
    return try out.withUnsafeMutableReadableBytes { all in
        try body(UnsafeMutableRawBufferPointer(rebasing: all[offset..<(offset + count)]))
    }
}

/// Constant time, so a forger learns nothing from how long a rejection took.
@inline(__always)
func constantTimeEqual(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
    a.count == b.count && CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
}

// MARK: ciphers without authentication

/// A block-aligned cipher with state carried from packet to packet (CTR counter, CBC chain).
protocol SSHBlockTransform {
    var blockSize: Int { get }
    /// Encrypts or decrypts `bytes` in place; `bytes.count` is a multiple of `blockSize`.
    mutating func apply(_ bytes: UnsafeMutableRawBufferPointer) throws
}

/// AES-CTR (RFC 4344): the 128-bit big-endian counter starts at the IV and runs on across packets.
struct AESCTRTransform: SSHBlockTransform {
    let key: SymmetricKey
    var counterHigh: UInt64
    var counterLow: UInt64
    var blockSize: Int { 16 }

    init(key: [UInt8], iv: [UInt8]) {
        precondition(iv.count == 16)
        self.key = SymmetricKey(data: key)
        counterHigh = iv[0..<8].reduce(0) { $0 << 8 | UInt64($1) }
        counterLow = iv[8..<16].reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func apply(_ bytes: UnsafeMutableRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        let counter = (counterHigh.bigEndian, counterLow.bigEndian)
        let nonce = try withUnsafeBytes(of: counter) { try AES._CTR.Nonce(nonceBytes: $0) }
        let output = try AES._CTR.encrypt(UnsafeRawBufferPointer(bytes), using: key, nonce: nonce)
        output.withUnsafeBytes { bytes.copyMemory(from: $0) }
        let (low, carry) = counterLow.addingReportingOverflow(UInt64(bytes.count / 16))
        counterLow = low
        if carry { counterHigh &+= 1 }
    }
}

/// An OpenSSL EVP cipher context that keeps its chaining state between calls (AES-CBC for the
/// configured-only legacy ciphers; swift-crypto has no CBC).
final class EVPBlockTransformContext {
    let context: OpaquePointer

    init(cipher: OpaquePointer, key: [UInt8], iv: [UInt8], encrypt: Bool) throws {
        guard let context = EVP_CIPHER_CTX_new() else { throw CipherErrors.crypto("EVP_CIPHER_CTX_new failed") }
        self.context = context
        guard EVP_CipherInit_ex(context, cipher, nil, key, iv, encrypt ? 1 : 0) == 1,
            EVP_CIPHER_CTX_set_padding(context, 0) == 1
        else {
            throw CipherErrors.crypto("EVP_CipherInit_ex failed")
        }
    }

    deinit { EVP_CIPHER_CTX_free(context) }
}

struct EVPBlockTransform: SSHBlockTransform {
    let state: EVPBlockTransformContext
    var blockSize: Int { 16 }

    init(cbcKey key: [UInt8], iv: [UInt8], encrypt: Bool) throws {
        let cipher: OpaquePointer?
        switch key.count {
        case 16: cipher = EVP_aes_128_cbc()
        case 24: cipher = EVP_aes_192_cbc()
        case 32: cipher = EVP_aes_256_cbc()
        default: cipher = nil
        }
        guard let cipher else { throw CipherErrors.crypto("no AES-CBC for a \(key.count)-byte key") }
        state = try EVPBlockTransformContext(cipher: cipher, key: key, iv: iv, encrypt: encrypt)
    }

    mutating func apply(_ bytes: UnsafeMutableRawBufferPointer) throws {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        let pointer = base.assumingMemoryBound(to: UInt8.self)
        var written: Int32 = 0
        guard EVP_CipherUpdate(state.context, pointer, &written, pointer, Int32(bytes.count)) == 1,
            Int(written) == bytes.count
        else {
            throw CipherErrors.crypto("EVP_CipherUpdate failed")
        }
    }
}

// MARK: MACs

protocol SSHPacketMAC {
    var length: Int { get }
    /// MAC(key, uint32 sequence_number || first || second) into `output` (`length` bytes).
    func compute(sequenceNumber: UInt32, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer)
}

struct SSHHMAC<H: HashFunction>: SSHPacketMAC {
    /// Keyed once; each packet starts from a copy, so the key is not processed again.
    let keyed: HMAC<H>
    var length: Int { H.Digest.byteCount }

    init(key: [UInt8]) {
        keyed = HMAC<H>(key: SymmetricKey(data: key))
    }

    func compute(sequenceNumber: UInt32, _ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) {
        var hmac = keyed
        withUnsafeBytes(of: sequenceNumber.bigEndian) { hmac.update(data: $0) }
        if first.count > 0 { hmac.update(data: first) }
        if second.count > 0 { hmac.update(data: second) }
        let code = hmac.finalize()
        code.withUnsafeBytes { output.copyMemory(from: $0) }
    }
}

// MARK: ChaCha20 and Poly1305

/// A ChaCha20 key as DJB defined the cipher (64-bit nonce, 64-bit block counter), which OpenSSH's
/// chacha20-poly1305 uses. swift-crypto has the RFC 8439 form (96-bit nonce, 32-bit counter);
/// the state words are the same when the 96-bit nonce is 4 zero bytes (the counter's high word)
/// followed by the 8-byte nonce, for counters below 2^32, which SSH packets never reach.
struct ChaCha20Key {
    let key: SymmetricKey

    init<Bytes: ContiguousBytes>(_ bytes: Bytes) {
        key = SymmetricKey(data: bytes)
    }

    static func nonce(_ nonce64: UInt64) throws -> Insecure.ChaCha20CTR.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for i in 0..<8 { bytes[4 + i] = UInt8(truncatingIfNeeded: nonce64 >> (56 - 8 * i)) }
        return try Insecure.ChaCha20CTR.Nonce(data: bytes)
    }

    /// XORs the key stream from block `counter` into `bytes`, in place.
    func apply(nonce: Insecure.ChaCha20CTR.Nonce, counter: UInt32, _ bytes: UnsafeMutableRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        let output = try crypt(nonce: nonce, counter: counter, UnsafeRawBufferPointer(bytes))
        output.withUnsafeBytes { bytes.copyMemory(from: $0) }
    }

    /// The packet length from its 4 encrypted bytes (read as a big-endian integer), key stream block 0.
    func decryptLength(_ encrypted: UInt32, nonce: Insecure.ChaCha20CTR.Nonce) throws -> UInt32 {
        let output = try withUnsafeBytes(of: encrypted.bigEndian) { try crypt(nonce: nonce, counter: 0, $0) }
        return output.reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    }

    /// The key stream from block `counter` XORed into `input`, returned.
    func crypt(nonce: Insecure.ChaCha20CTR.Nonce, counter: UInt32, _ input: UnsafeRawBufferPointer) throws -> Data {
        try Insecure.ChaCha20CTR.encrypt(input, using: key, counter: .init(offset: counter), nonce: nonce)
    }
}

/// AES-GCM with the key set up once per direction, in place over the packet.
struct AESGCMKey {
    let key: SymmetricKey

    init<Bytes: ContiguousBytes>(_ bytes: Bytes) {
        key = SymmetricKey(data: bytes)
    }

    /// Encrypts `bytes` in place and returns the 16-byte tag.
    func seal(nonce: AES.GCM.Nonce, _ bytes: UnsafeMutableRawBufferPointer, authenticating aad: UnsafeRawBufferPointer) throws -> Data {
        let box = try AES.GCM.seal(UnsafeRawBufferPointer(bytes), using: key, nonce: nonce, authenticating: aad)
        box.ciphertext.withUnsafeBytes { bytes.copyMemory(from: $0) }
        return box.tag
    }

    /// The plaintext, or SSH_MAC_ERROR when the tag does not match.
    func open(nonce: AES.GCM.Nonce, _ ciphertext: UnsafeRawBufferPointer, tag: UnsafeRawBufferPointer, authenticating aad: UnsafeRawBufferPointer) throws -> Data {
        let box = try AES.GCM.SealedBox(nonce: nonce, ciphertext: ciphertext, tag: tag)
        do {
            return try AES.GCM.open(box, using: key, authenticating: aad)
        } catch {
            throw CipherErrors.mac
        }
    }
}

/// OpenSSL's POLY1305 EVP_MAC; the algorithm is fetched once per process, the context once per
/// sealer/opener and re-keyed per packet.
final class Poly1305 {
    nonisolated(unsafe) private static let algorithm: OpaquePointer? = EVP_MAC_fetch(nil, "POLY1305", nil)
    private let context: OpaquePointer
    static let tagLength = 16
    static let keyLength = 32

    init() throws {
        guard let algorithm = Self.algorithm, let context = EVP_MAC_CTX_new(algorithm) else {
            throw CipherErrors.crypto("OpenSSL has no POLY1305 MAC")
        }
        self.context = context
    }

    deinit { EVP_MAC_CTX_free(context) }

    func tag(key: UnsafeRawBufferPointer, message: UnsafeRawBufferPointer, into output: UnsafeMutableRawBufferPointer) throws {
        precondition(key.count == Self.keyLength && output.count == Self.tagLength)
        var written = 0
        guard EVP_MAC_init(context, key.baseAddress?.assumingMemoryBound(to: UInt8.self), key.count, nil) == 1,
            message.count == 0 || EVP_MAC_update(context, message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count) == 1,
            EVP_MAC_final(context, output.baseAddress?.assumingMemoryBound(to: UInt8.self), &written, output.count) == 1,
            written == Self.tagLength
        else {
            throw CipherErrors.crypto("Poly1305 failed")
        }
    }
}
