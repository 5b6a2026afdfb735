import BerthSSHWire
import Crypto
import Foundation
import NIOCore

// The binary packet protocol (RFC 4253 §6) in its four shapes: unprotected, cipher + MAC
// (MAC over the plaintext or, for -etm, over the ciphertext), AES-GCM (RFC 5647 as OpenSSH does
// it) and OpenSSH's chacha20-poly1305. Sealers lay the packet out in `out` (the one copy of the
// payload) and encrypt it there; openers wait for a whole packet without consuming anything.

// MARK: none

struct PlainSealer: SSHPacketSealer {
    let padding: PaddingFill

    mutating func seal(payload: ByteBuffer, sequenceNumber: UInt32, into out: inout ByteBuffer) throws {
        _ = try PacketLayout.writePlain(payload: payload, blockSize: 8, lengthCovered: true, trailer: 0, padding: padding, into: &out)
    }
}

struct PlainOpener: SSHPacketOpener {
    mutating func open(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        try PacketLayout.checkLength(length, blockSize: 8, lengthCovered: true)
        let packetLength = Int(length)
        guard buffer.readableBytes >= 4 + packetLength else { return nil }
        let range = try PacketLayout.payloadRange(paddingLength: buffer.getInteger(at: buffer.readerIndex + 4)!, packetLength: packetLength)
        let payload = buffer.getSlice(at: buffer.readerIndex + 4 + range.lowerBound, length: range.count)!
        buffer.moveReaderIndex(forwardBy: 4 + packetLength)
        return payload
    }
}

// MARK: cipher + MAC

struct CipherMACSealer: SSHPacketSealer {
    var cipher: any SSHBlockTransform
    let mac: any SSHPacketMAC
    let encryptThenMAC: Bool
    let padding: PaddingFill

    mutating func seal(payload: ByteBuffer, sequenceNumber: UInt32, into out: inout ByteBuffer) throws {
        let macLength = mac.length
        let (start, packetLength) = try PacketLayout.writePlain(
            payload: payload, blockSize: cipher.blockSize, lengthCovered: !encryptThenMAC,
            trailer: macLength, padding: padding, into: &out)
        let total = 4 + packetLength
        out.writeRepeatingByte(0, count: macLength)
        let mac = self.mac
        try withMutableRegion(&out, at: start, count: total + macLength) { region in
            let packet = UnsafeMutableRawBufferPointer(rebasing: region[0..<total])
            let tag = UnsafeMutableRawBufferPointer(rebasing: region[total...])
            if encryptThenMAC {
                try cipher.apply(UnsafeMutableRawBufferPointer(rebasing: packet[4...]))
                mac.compute(sequenceNumber: sequenceNumber, UnsafeRawBufferPointer(packet), UnsafeRawBufferPointer(start: nil, count: 0), into: tag)
            } else {
                mac.compute(sequenceNumber: sequenceNumber, UnsafeRawBufferPointer(packet), UnsafeRawBufferPointer(start: nil, count: 0), into: tag)
                try cipher.apply(packet)
            }
        }
    }
}

struct CipherMACOpener: SSHPacketOpener {
    var cipher: any SSHBlockTransform
    let mac: any SSHPacketMAC
    let encryptThenMAC: Bool
    /// Classic MAC: the first block, already decrypted to learn the length. The key stream (CTR)
    /// or chain (CBC) has moved past it, so it must not be decrypted again.
    private var firstBlock: [UInt8]
    private var pendingLength: Int?
    private var expectedMAC: [UInt8]
    private let allocator = ByteBufferAllocator()

    init(cipher: any SSHBlockTransform, mac: any SSHPacketMAC, encryptThenMAC: Bool) {
        self.cipher = cipher
        self.mac = mac
        self.encryptThenMAC = encryptThenMAC
        firstBlock = [UInt8](repeating: 0, count: cipher.blockSize)
        expectedMAC = [UInt8](repeating: 0, count: mac.length)
    }

    mutating func open(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer? {
        encryptThenMAC
            ? try openETM(from: &buffer, sequenceNumber: sequenceNumber)
            : try openClassic(from: &buffer, sequenceNumber: sequenceNumber)
    }

    private mutating func openETM(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        try PacketLayout.checkLength(length, blockSize: cipher.blockSize, lengthCovered: false)
        let packetLength = Int(length)
        let total = 4 + packetLength
        let macLength = mac.length
        guard buffer.readableBytes >= total + macLength else { return nil }
        let mac = self.mac
        let valid = buffer.withUnsafeReadableBytes { all in
            expectedMAC.withUnsafeMutableBytes { expected in
                mac.compute(
                    sequenceNumber: sequenceNumber, UnsafeRawBufferPointer(rebasing: all[0..<total]),
                    UnsafeRawBufferPointer(start: nil, count: 0), into: expected)
                return constantTimeEqual(UnsafeRawBufferPointer(expected), UnsafeRawBufferPointer(rebasing: all[total..<(total + macLength)]))
            }
        }
        guard valid else { throw CipherErrors.mac }
        var plain = allocator.buffer(capacity: packetLength)
        var encrypted = buffer.getSlice(at: buffer.readerIndex + 4, length: packetLength)!
        plain.writeBuffer(&encrypted)
        try plain.withUnsafeMutableReadableBytes { try cipher.apply($0) }
        let range = try PacketLayout.payloadRange(paddingLength: plain.getInteger(at: plain.readerIndex)!, packetLength: packetLength)
        buffer.moveReaderIndex(forwardBy: total + macLength)
        return plain.getSlice(at: plain.readerIndex + range.lowerBound, length: range.count)
    }

    private mutating func openClassic(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer? {
        let blockSize = cipher.blockSize
        if pendingLength == nil {
            guard buffer.readableBytes >= blockSize else { return nil }
            buffer.withUnsafeReadableBytes { all in
                firstBlock.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: all[0..<blockSize])) }
            }
            try firstBlock.withUnsafeMutableBytes { try cipher.apply($0) }
            let length = firstBlock[0..<4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            try PacketLayout.checkLength(length, blockSize: blockSize, lengthCovered: true)
            pendingLength = Int(length)
        }
        let packetLength = pendingLength!
        let total = 4 + packetLength
        let macLength = mac.length
        guard buffer.readableBytes >= total + macLength else { return nil }
        pendingLength = nil

        var plain = allocator.buffer(capacity: total)
        plain.writeBytes(firstBlock)
        var rest = buffer.getSlice(at: buffer.readerIndex + blockSize, length: total - blockSize)!
        plain.writeBuffer(&rest)
        try plain.withUnsafeMutableReadableBytes { try cipher.apply(UnsafeMutableRawBufferPointer(rebasing: $0[blockSize...])) }
        let mac = self.mac
        let valid = plain.withUnsafeReadableBytes { packet in
            buffer.withUnsafeReadableBytes { all in
                expectedMAC.withUnsafeMutableBytes { expected in
                    mac.compute(sequenceNumber: sequenceNumber, packet, UnsafeRawBufferPointer(start: nil, count: 0), into: expected)
                    return constantTimeEqual(UnsafeRawBufferPointer(expected), UnsafeRawBufferPointer(rebasing: all[total..<(total + macLength)]))
                }
            }
        }
        guard valid else { throw CipherErrors.mac }
        let range = try PacketLayout.payloadRange(paddingLength: plain.getInteger(at: plain.readerIndex + 4)!, packetLength: packetLength)
        buffer.moveReaderIndex(forwardBy: total + macLength)
        return plain.getSlice(at: plain.readerIndex + 4 + range.lowerBound, length: range.count)
    }
}

// MARK: AES-GCM

/// RFC 5647 §7.1: a 4-byte fixed field and an 8-byte invocation counter, incremented per packet.
struct GCMNonceSequence {
    private var bytes: [UInt8]
    private var invocation: UInt64

    init(iv: [UInt8]) {
        precondition(iv.count == 12)
        bytes = iv
        invocation = iv[4..<12].reduce(0) { $0 << 8 | UInt64($1) }
    }

    func current() throws -> AES.GCM.Nonce { try AES.GCM.Nonce(data: bytes) }

    mutating func advance() {
        invocation &+= 1
        for i in 0..<8 { bytes[4 + i] = UInt8(truncatingIfNeeded: invocation >> (56 - 8 * i)) }
    }
}

struct GCMSealer: SSHPacketSealer {
    let key: AESGCMKey
    var nonces: GCMNonceSequence
    let padding: PaddingFill

    init(key: [UInt8], iv: [UInt8], padding: PaddingFill) throws {
        self.key = AESGCMKey(key)
        nonces = GCMNonceSequence(iv: iv)
        self.padding = padding
    }

    mutating func seal(payload: ByteBuffer, sequenceNumber: UInt32, into out: inout ByteBuffer) throws {
        let (start, packetLength) = try PacketLayout.writePlain(
            payload: payload, blockSize: 16, lengthCovered: false, trailer: 16, padding: padding, into: &out)
        let total = 4 + packetLength
        let nonce = try nonces.current()
        nonces.advance()
        let key = self.key
        let tag = try withMutableRegion(&out, at: start, count: total) { region in
            try key.seal(
                nonce: nonce, UnsafeMutableRawBufferPointer(rebasing: region[4...]),
                authenticating: UnsafeRawBufferPointer(rebasing: region[0..<4]))
        }
        tag.withUnsafeBytes { _ = out.writeBytes($0) }
    }
}

struct GCMOpener: SSHPacketOpener {
    let key: AESGCMKey
    var nonces: GCMNonceSequence
    private let allocator = ByteBufferAllocator()

    init(key: [UInt8], iv: [UInt8]) throws {
        self.key = AESGCMKey(key)
        nonces = GCMNonceSequence(iv: iv)
    }

    mutating func open(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
        try PacketLayout.checkLength(length, blockSize: 16, lengthCovered: false)
        let packetLength = Int(length)
        let total = 4 + packetLength
        guard buffer.readableBytes >= total + 16 else { return nil }
        let nonce = try nonces.current()
        let key = self.key
        let plain: Data = try buffer.withUnsafeReadableBytes { all in
            try key.open(
                nonce: nonce, UnsafeRawBufferPointer(rebasing: all[4..<total]),
                tag: UnsafeRawBufferPointer(rebasing: all[total..<(total + 16)]),
                authenticating: UnsafeRawBufferPointer(rebasing: all[0..<4]))
        }
        nonces.advance()
        let range = try PacketLayout.payloadRange(paddingLength: plain[plain.startIndex], packetLength: packetLength)
        var payload = allocator.buffer(capacity: range.count)
        plain.withUnsafeBytes { _ = payload.writeBytes(UnsafeRawBufferPointer(rebasing: $0[range])) }
        buffer.moveReaderIndex(forwardBy: total + 16)
        return payload
    }
}

// MARK: chacha20-poly1305@openssh.com

/// OpenSSH's construction (PROTOCOL.chacha20poly1305, draft-ietf-sshm-chacha20-poly1305): the
/// 64-byte key is K_2 (payload and Poly1305 key) followed by K_1 (length); the nonce is the
/// sequence number; the Poly1305 key is the first 32 bytes of K_2's block 0, the payload is
/// encrypted from block 1, and the tag covers the encrypted length and payload.
struct ChaChaPolyKeys {
    let main: ChaCha20Key
    let header: ChaCha20Key
    let poly: Poly1305
    static let zeros = [UInt8](repeating: 0, count: Poly1305.keyLength)

    init(key: [UInt8]) throws {
        precondition(key.count == 64)
        main = ChaCha20Key(key[0..<32])
        header = ChaCha20Key(key[32..<64])
        poly = try Poly1305()
    }

    func polyKey(nonce: Insecure.ChaCha20CTR.Nonce) throws -> Data {
        try Self.zeros.withUnsafeBytes { try main.crypt(nonce: nonce, counter: 0, $0) }
    }
}

struct ChaChaPolySealer: SSHPacketSealer {
    let keys: ChaChaPolyKeys
    let padding: PaddingFill

    init(key: [UInt8], padding: PaddingFill) throws {
        keys = try ChaChaPolyKeys(key: key)
        self.padding = padding
    }

    mutating func seal(payload: ByteBuffer, sequenceNumber: UInt32, into out: inout ByteBuffer) throws {
        let (start, packetLength) = try PacketLayout.writePlain(
            payload: payload, blockSize: 8, lengthCovered: false, trailer: 16, padding: padding, into: &out)
        let total = 4 + packetLength
        out.writeRepeatingByte(0, count: Poly1305.tagLength)
        let nonce = try ChaCha20Key.nonce(UInt64(sequenceNumber))
        let polyKey = try keys.polyKey(nonce: nonce)
        let keys = self.keys
        try withMutableRegion(&out, at: start, count: total + Poly1305.tagLength) { region in
            try keys.header.apply(nonce: nonce, counter: 0, UnsafeMutableRawBufferPointer(rebasing: region[0..<4]))
            try keys.main.apply(nonce: nonce, counter: 1, UnsafeMutableRawBufferPointer(rebasing: region[4..<total]))
            try polyKey.withUnsafeBytes {
                try keys.poly.tag(
                    key: $0, message: UnsafeRawBufferPointer(rebasing: region[0..<total]),
                    into: UnsafeMutableRawBufferPointer(rebasing: region[total...]))
            }
        }
    }
}

struct ChaChaPolyOpener: SSHPacketOpener {
    let keys: ChaChaPolyKeys
    private var pendingLength: Int?
    private var expectedTag = [UInt8](repeating: 0, count: Poly1305.tagLength)
    private let allocator = ByteBufferAllocator()

    init(key: [UInt8]) throws {
        keys = try ChaChaPolyKeys(key: key)
    }

    mutating func open(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer? {
        let nonce = try ChaCha20Key.nonce(UInt64(sequenceNumber))
        if pendingLength == nil {
            guard let encryptedLength = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else { return nil }
            let length = try keys.header.decryptLength(encryptedLength, nonce: nonce)
            try PacketLayout.checkLength(length, blockSize: 8, lengthCovered: false)
            pendingLength = Int(length)
        }
        let packetLength = pendingLength!
        let total = 4 + packetLength
        let tagLength = Poly1305.tagLength
        guard buffer.readableBytes >= total + tagLength else { return nil }
        pendingLength = nil

        let polyKey = try keys.polyKey(nonce: nonce)
        let keys = self.keys
        let plain: Data = try buffer.withUnsafeReadableBytes { all in
            let valid = try expectedTag.withUnsafeMutableBytes { expected in
                try polyKey.withUnsafeBytes { try keys.poly.tag(key: $0, message: UnsafeRawBufferPointer(rebasing: all[0..<total]), into: expected) }
                return constantTimeEqual(UnsafeRawBufferPointer(expected), UnsafeRawBufferPointer(rebasing: all[total..<(total + tagLength)]))
            }
            guard valid else { throw CipherErrors.mac }
            return try keys.main.crypt(nonce: nonce, counter: 1, UnsafeRawBufferPointer(rebasing: all[4..<total]))
        }
        let range = try PacketLayout.payloadRange(paddingLength: plain[plain.startIndex], packetLength: packetLength)
        var payload = allocator.buffer(capacity: range.count)
        plain.withUnsafeBytes { _ = payload.writeBytes(UnsafeRawBufferPointer(rebasing: $0[range])) }
        buffer.moveReaderIndex(forwardBy: total + tagLength)
        return payload
    }
}
