import BerthSSHWire
import NIOCore
import XCTest
@testable import BerthSSHCipher
import BerthTestSupport

/// One cipher × MAC combination with its keys (both ends of one direction).
struct Combination: CustomStringConvertible {
    let cipher: String
    let mac: String?
    let key: [UInt8]
    let iv: [UInt8]
    let macKey: [UInt8]

    var description: String { mac.map { "\(cipher)+\($0)" } ?? cipher }

    static func all(using rng: inout SeededGenerator) -> [Combination] {
        var result: [Combination] = [Combination(cipher: "none", mac: nil, key: [], iv: [], macKey: [])]
        for cipher in SSHCipherSuite.supportedCiphers {
            let macs: [String?] = SSHCipherSuite.isAEAD(cipher: cipher) ? [nil] : SSHCipherSuite.supportedMACs
            for mac in macs {
                result.append(
                    Combination(
                        cipher: cipher, mac: mac,
                        key: rng.bytes(SSHCipherSuite.keyLength(cipher: cipher)),
                        iv: rng.bytes(SSHCipherSuite.ivLength(cipher: cipher)),
                        macKey: rng.bytes(mac.map { SSHCipherSuite.keyLength(mac: $0) } ?? 0)))
            }
        }
        return result
    }

    var isPlain: Bool { cipher == "none" }

    func sealer(padding: PaddingFill = .random) throws -> any SSHPacketSealer {
        if isPlain { return SSHCipherSuite.plainSealer(padding: padding) }
        return try SSHCipherSuite.makeSealer(cipher: cipher, mac: mac, key: key, iv: iv, macKey: macKey, padding: padding)
    }

    func opener() throws -> any SSHPacketOpener {
        if isPlain { return SSHCipherSuite.plainOpener() }
        return try SSHCipherSuite.makeOpener(cipher: cipher, mac: mac, key: key, iv: iv, macKey: macKey)
    }

    /// Where tampering is first guaranteed to reach the MAC/tag rather than the length field.
    var firstAuthenticatedByte: Int {
        if SSHCipherSuite.isAEAD(cipher: cipher) || mac?.hasSuffix("-etm@openssh.com") == true { return 4 }
        // Classic MAC: in CTR a flipped bit stays in place; in CBC it garbles its whole block,
        // the length included.
        return cipher.hasSuffix("-cbc") ? 16 : 4
    }
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    var buffer = ByteBufferAllocator().buffer(capacity: bytes.count)
    buffer.writeBytes(bytes)
    return buffer
}

/// Feeds `stream` to `opener` in the given chunk sizes, collecting every payload.
func openAll(_ stream: ByteBuffer, chunks: [Int], opener: inout any SSHPacketOpener, firstSequence: UInt32) throws -> [ByteBuffer] {
    var input = ByteBufferAllocator().buffer(capacity: 0)
    var remaining = stream
    var payloads: [ByteBuffer] = []
    var sequence = firstSequence
    var chunkIndex = 0
    while remaining.readableBytes > 0 {
        let size = min(chunks.isEmpty ? remaining.readableBytes : chunks[chunkIndex % chunks.count], remaining.readableBytes)
        chunkIndex += 1
        var piece = remaining.readSlice(length: size)!
        input.writeBuffer(&piece)
        while let payload = try opener.open(from: &input, sequenceNumber: sequence) {
            payloads.append(payload)
            sequence &+= 1
        }
    }
    XCTAssertEqual(input.readableBytes, 0, "bytes left over")
    return payloads
}

final class PacketTests: XCTestCase {
    let payloadSizes = [0, 1, 3, 11, 15, 16, 17, 31, 32, 33, 100, 255, 1000, 4096, 32768, 32768 + 13]

    func testNamesAndLengths() {
        XCTAssertEqual(
            SSHCipherSuite.defaultCiphers,
            [
                "chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                "aes128-ctr", "aes192-ctr", "aes256-ctr",
            ])
        XCTAssertEqual(SSHCipherSuite.supportedCiphers.prefix(6), SSHCipherSuite.defaultCiphers[...])
        XCTAssertEqual(
            SSHCipherSuite.defaultMACs,
            [
                "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512",
            ])
        XCTAssertEqual(SSHCipherSuite.supportedMACs, SSHCipherSuite.defaultMACs + ["hmac-sha1-etm@openssh.com", "hmac-sha1"])
        XCTAssertTrue(SSHCipherSuite.isAEAD(cipher: "chacha20-poly1305@openssh.com"))
        XCTAssertTrue(SSHCipherSuite.isAEAD(cipher: "aes256-gcm@openssh.com"))
        XCTAssertFalse(SSHCipherSuite.isAEAD(cipher: "aes128-ctr"))
        XCTAssertEqual(SSHCipherSuite.keyLength(cipher: "chacha20-poly1305@openssh.com"), 64)
        XCTAssertEqual(SSHCipherSuite.ivLength(cipher: "chacha20-poly1305@openssh.com"), 0)
        XCTAssertEqual(SSHCipherSuite.keyLength(cipher: "aes192-ctr"), 24)
        XCTAssertEqual(SSHCipherSuite.ivLength(cipher: "aes128-gcm@openssh.com"), 12)
        XCTAssertEqual(SSHCipherSuite.ivLength(cipher: "aes256-cbc"), 16)
        XCTAssertEqual(SSHCipherSuite.keyLength(mac: "hmac-sha2-512-etm@openssh.com"), 64)
        XCTAssertEqual(SSHCipherSuite.keyLength(mac: "hmac-sha1"), 20)
        XCTAssertEqual(SSHCipherSuite.keyLength(cipher: "3des-cbc"), 0)
    }

    func testFactoryRefusesUnknownNamesAndWrongKeys() {
        func code(_ body: () throws -> Any) -> String? {
            do { _ = try body(); return nil } catch let error as SSHProtocolError { return error.code } catch { return "\(error)" }
        }
        XCTAssertEqual(code { try SSHCipherSuite.makeSealer(cipher: "3des-cbc", mac: "hmac-sha1", key: [], iv: [], macKey: []) }, "SSH_UNKNOWN_CIPHER")
        XCTAssertEqual(
            code { try SSHCipherSuite.makeOpener(cipher: "aes128-ctr", mac: "hmac-md5", key: .init(repeating: 0, count: 16), iv: .init(repeating: 0, count: 16), macKey: []) },
            "SSH_UNKNOWN_MAC")
        XCTAssertEqual(
            code { try SSHCipherSuite.makeOpener(cipher: "aes128-ctr", mac: nil, key: .init(repeating: 0, count: 16), iv: .init(repeating: 0, count: 16), macKey: []) },
            "SSH_UNKNOWN_MAC")
        XCTAssertEqual(
            code {
                try SSHCipherSuite.makeSealer(
                    cipher: "aes256-ctr", mac: "hmac-sha2-256", key: .init(repeating: 0, count: 16), iv: .init(repeating: 0, count: 16), macKey: .init(repeating: 0, count: 32))
            }, "SSH_BAD_KEY_LENGTH")
        XCTAssertEqual(
            code {
                try SSHCipherSuite.makeSealer(
                    cipher: "aes128-ctr", mac: "hmac-sha2-256", key: .init(repeating: 0, count: 16), iv: .init(repeating: 0, count: 16), macKey: .init(repeating: 0, count: 20))
            }, "SSH_BAD_KEY_LENGTH")
        XCTAssertEqual(
            code { try SSHCipherSuite.makeSealer(cipher: "chacha20-poly1305@openssh.com", mac: nil, key: .init(repeating: 0, count: 32), iv: [], macKey: []) }, "SSH_BAD_KEY_LENGTH"
        )
        XCTAssertNil(
            code { try SSHCipherSuite.makeSealer(cipher: "aes128-gcm@openssh.com", mac: nil, key: .init(repeating: 0, count: 16), iv: .init(repeating: 0, count: 12), macKey: []) })
    }

    /// Every combination: many packets of many sizes in one stream, opened whole, one byte at a
    /// time, and in random chunks; sequence numbers run across the 2^32 wrap.
    func testRoundTripEveryCombination() throws {
        var rng = SeededGenerator(seed: 1)
        for combination in Combination.all(using: &rng) {
            let payloads = payloadSizes.map { rng.bytes($0) }
            var sealer = try combination.sealer()
            var stream = ByteBufferAllocator().buffer(capacity: 0)
            let first: UInt32 = 0xFFFF_FFF8
            for (index, payload) in payloads.enumerated() {
                let before = stream.readableBytes
                try sealer.seal(payload: buffer(payload), sequenceNumber: first &+ UInt32(index), into: &stream)
                try checkLayout(combination, packetBytes: stream.readableBytes - before, payload: payload.count)
            }
            let randomChunks = (0..<64).map { _ in Int.random(in: 1...700, using: &rng) }
            for chunks in [[], randomChunks] {
                var opener = try combination.opener()
                let opened = try openAll(stream, chunks: chunks, opener: &opener, firstSequence: first)
                XCTAssertEqual(opened.map { Array($0.readableBytesView) }, payloads, "\(combination) chunks \(chunks.prefix(3))")
            }
            // One byte at a time over the packets up to 1000 bytes (every length-field and
            // first-block boundary is crossed; the large ones only add time).
            let small = payloadSizes.firstIndex(of: 4096)!
            var smallStream = ByteBufferAllocator().buffer(capacity: 0)
            var smallSealer = try combination.sealer()
            for (index, payload) in payloads[..<small].enumerated() {
                try smallSealer.seal(payload: buffer(payload), sequenceNumber: first &+ UInt32(index), into: &smallStream)
            }
            var opener = try combination.opener()
            let opened = try openAll(smallStream, chunks: [1], opener: &opener, firstSequence: first)
            XCTAssertEqual(opened.map { Array($0.readableBytesView) }, Array(payloads[..<small]), "\(combination) byte by byte")
        }
    }

    private func checkLayout(_ combination: Combination, packetBytes: Int, payload: Int) throws {
        let trailer: Int
        let blockSize: Int
        let lengthOutside: Bool
        switch combination.cipher {
        case "none": (trailer, blockSize, lengthOutside) = (0, 8, false)
        case "chacha20-poly1305@openssh.com": (trailer, blockSize, lengthOutside) = (16, 8, true)
        case let name where name.hasSuffix("-gcm@openssh.com"): (trailer, blockSize, lengthOutside) = (16, 16, true)
        default:
            let etm = combination.mac!.hasSuffix("-etm@openssh.com")
            trailer = SSHCipherSuite.keyLength(mac: combination.mac!) == 20 ? 20 : (combination.mac!.contains("512") ? 64 : 32)
            (blockSize, lengthOutside) = (16, etm)
        }
        let aligned = packetBytes - trailer - (lengthOutside ? 4 : 0)
        XCTAssertEqual(aligned % blockSize, 0, "\(combination): \(aligned) not a multiple of \(blockSize)")
        let padding = packetBytes - trailer - 4 - 1 - payload
        XCTAssertGreaterThanOrEqual(padding, 4, "\(combination)")
        XCTAssertLessThan(padding, 4 + blockSize, "\(combination)")
    }

    func testRandomPaddingDiffers() throws {
        var sealer = SSHCipherSuite.plainSealer()
        var a = ByteBufferAllocator().buffer(capacity: 0)
        var b = ByteBufferAllocator().buffer(capacity: 0)
        try sealer.seal(payload: buffer(Array(repeating: 1, count: 100)), sequenceNumber: 0, into: &a)
        try sealer.seal(payload: buffer(Array(repeating: 1, count: 100)), sequenceNumber: 0, into: &b)
        // 8 random padding bytes: equal by chance with probability 2^-64.
        XCTAssertNotEqual(a, b)
    }

    /// The sealer appends after what `out` already holds and leaves it alone; the reader index
    /// of `out` need not be zero.
    func testSealAppendsToNonEmptyBuffer() throws {
        var rng = SeededGenerator(seed: 2)
        for combination in Combination.all(using: &rng) {
            var sealer = try combination.sealer()
            var out = buffer([9, 9, 9, 9, 9])
            out.moveReaderIndex(forwardBy: 2)
            try sealer.seal(payload: buffer(Array("hello".utf8)), sequenceNumber: 7, into: &out)
            XCTAssertEqual(Array(out.readableBytesView.prefix(3)), [9, 9, 9])
            out.moveReaderIndex(forwardBy: 3)
            var opener = try combination.opener()
            let payload = try opener.open(from: &out, sequenceNumber: 7)
            XCTAssertEqual(payload.map { Array($0.readableBytesView) }, Array("hello".utf8), "\(combination)")
        }
    }

    func testLargestPayload() throws {
        var rng = SeededGenerator(seed: 3)
        for combination in Combination.all(using: &rng) where combination.mac == nil || combination.mac == "hmac-sha2-256" {
            var sealer = try combination.sealer()
            let payload = rng.bytes(SSHCipherSuite.maxPayloadLength)
            var stream = ByteBufferAllocator().buffer(capacity: 0)
            try sealer.seal(payload: buffer(payload), sequenceNumber: 1, into: &stream)
            var opener = try combination.opener()
            XCTAssertEqual(try opener.open(from: &stream, sequenceNumber: 1).map { Array($0.readableBytesView) }, payload, "\(combination)")
            XCTAssertThrowsError(try sealer.seal(payload: buffer(payload + [0]), sequenceNumber: 2, into: &stream)) {
                XCTAssertEqual(($0 as? SSHProtocolError)?.code, "SSH_PAYLOAD_TOO_LARGE")
            }
        }
    }

    /// A changed byte anywhere after the length field is a MAC/tag error; a changed length is a
    /// length error or a wait for bytes that never come. No tampered packet yields a payload.
    func testTamperingIsDetected() throws {
        var rng = SeededGenerator(seed: 4)
        for combination in Combination.all(using: &rng) where !combination.isPlain {
            var sealer = try combination.sealer()
            var packet = ByteBufferAllocator().buffer(capacity: 0)
            try sealer.seal(payload: buffer(rng.bytes(40)), sequenceNumber: 5, into: &packet)
            let bytes = Array(packet.readableBytesView)
            for index in bytes.indices {
                var tampered = bytes
                tampered[index] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                var input = buffer(tampered)
                var opener = try combination.opener()
                do {
                    let payload = try opener.open(from: &input, sequenceNumber: 5)
                    XCTAssertNil(payload, "\(combination): tampered byte \(index) accepted")
                    XCTAssertLessThan(index, combination.firstAuthenticatedByte, "\(combination): tampered byte \(index) not detected")
                } catch let error as SSHProtocolError {
                    if index >= combination.firstAuthenticatedByte {
                        XCTAssertEqual(error.code, "SSH_MAC_ERROR", "\(combination) byte \(index)")
                        XCTAssertEqual(error.disconnectReason, 5)
                    } else {
                        XCTAssertTrue(["SSH_MAC_ERROR", "SSH_BAD_PACKET_LENGTH"].contains(error.code), "\(combination) byte \(index): \(error)")
                    }
                }
            }
            // The right packet under the wrong sequence number (GCM uses its own counter).
            if !combination.cipher.hasSuffix("-gcm@openssh.com") {
                var input = packet
                var opener = try combination.opener()
                XCTAssertThrowsError(try opener.open(from: &input, sequenceNumber: 6)) {
                    XCTAssertTrue(["SSH_MAC_ERROR", "SSH_BAD_PACKET_LENGTH"].contains(($0 as? SSHProtocolError)?.code ?? ""), "\(combination)")
                }
            }
        }
    }

    func testPlainOpenerLimits() throws {
        func code(_ bytes: [UInt8]) -> String? {
            var opener = SSHCipherSuite.plainOpener()
            var input = buffer(bytes)
            do { return try opener.open(from: &input, sequenceNumber: 0) == nil ? "nil" : "payload" } catch let error as SSHProtocolError {
                return error.code
            } catch { return "\(error)" }
        }
        func packet(length: UInt32, padding: UInt8, total: Int) -> [UInt8] {
            withUnsafeBytes(of: length.bigEndian, Array.init) + [padding] + [UInt8](repeating: 0, count: max(0, total - 5))
        }
        XCTAssertEqual(code(packet(length: 12, padding: 4, total: 16)), "payload")
        XCTAssertEqual(code(packet(length: 12, padding: 4, total: 15)), "nil")
        XCTAssertEqual(code([0, 0, 0]), "nil")
        XCTAssertEqual(code(packet(length: 4, padding: 4, total: 8)), "SSH_BAD_PACKET_LENGTH")
        XCTAssertEqual(code(packet(length: 0, padding: 4, total: 8)), "SSH_BAD_PACKET_LENGTH")
        XCTAssertEqual(code(packet(length: 13, padding: 4, total: 17)), "SSH_BAD_PACKET_LENGTH")
        XCTAssertEqual(code(packet(length: 256 * 1024 + 4, padding: 4, total: 8)), "SSH_BAD_PACKET_LENGTH")
        XCTAssertEqual(code(packet(length: 0xFFFF_FFFC, padding: 4, total: 8)), "SSH_BAD_PACKET_LENGTH")
        XCTAssertEqual(code(packet(length: 12, padding: 12, total: 16)), "SSH_BAD_PADDING")
        XCTAssertEqual(code(packet(length: 12, padding: 3, total: 16)), "SSH_BAD_PADDING")
        XCTAssertEqual(code(packet(length: 12, padding: 11, total: 16)), "payload")
        // The largest allowed packet is waited for, not refused.
        XCTAssertEqual(code(packet(length: 256 * 1024 - 4, padding: 4, total: 8)), "nil")
    }

    /// An authentic packet whose decrypted padding length is impossible: built from the same parts
    /// the sealer uses, as no sealer writes one.
    func testAuthenticPacketWithBadPadding() throws {
        let key = [UInt8](repeating: 1, count: 16), iv = [UInt8](repeating: 2, count: 16), macKey = [UInt8](repeating: 3, count: 32)
        for padding: UInt8 in [3, 16, 200] {
            var cipher = AESCTRTransform(key: key, iv: iv)
            let mac = MACKind.sha256ETM.make(key: macKey)
            var packet: [UInt8] = [0, 0, 0, 16, padding] + [UInt8](repeating: 0, count: 15)
            try packet.withUnsafeMutableBytes { try cipher.apply(UnsafeMutableRawBufferPointer(rebasing: $0[4...])) }
            var tag = [UInt8](repeating: 0, count: 32)
            packet.withUnsafeBytes { p in tag.withUnsafeMutableBytes { mac.compute(sequenceNumber: 0, p, UnsafeRawBufferPointer(start: nil, count: 0), into: $0) } }
            var input = buffer(packet + tag)
            var opener = try SSHCipherSuite.makeOpener(cipher: "aes128-ctr", mac: "hmac-sha2-256-etm@openssh.com", key: key, iv: iv, macKey: macKey)
            XCTAssertThrowsError(try opener.open(from: &input, sequenceNumber: 0)) {
                XCTAssertEqual(($0 as? SSHProtocolError)?.code, "SSH_BAD_PADDING")
            }
        }
    }

    /// Random and mutated input never crashes or hangs an opener: each call returns nil, a payload,
    /// or throws SSHProtocolError.
    func testFuzzOpeners() throws {
        var rng = SeededGenerator(seed: 5)
        for combination in Combination.all(using: &rng) {
            var sealer = try combination.sealer()
            var valid = ByteBufferAllocator().buffer(capacity: 0)
            for index in 0..<4 { try sealer.seal(payload: buffer(rng.bytes(Int.random(in: 0...300, using: &rng))), sequenceNumber: UInt32(index), into: &valid) }
            let validBytes = Array(valid.readableBytesView)
            for round in 0..<150 {
                var input: [UInt8]
                switch round % 4 {
                case 0:
                    input = rng.bytes(Int.random(in: 0...600, using: &rng))
                case 1:
                    input = validBytes
                    for _ in 0..<Int.random(in: 1...8, using: &rng) {
                        input[Int.random(in: 0..<input.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                case 2:
                    input = Array(validBytes.prefix(Int.random(in: 0...validBytes.count, using: &rng)))
                    input.insert(contentsOf: rng.bytes(Int.random(in: 1...20, using: &rng)), at: Int.random(in: 0...input.count, using: &rng))
                default:
                    // A plausible length in front of random bytes, so the body is reached.
                    let length = UInt32(Int.random(in: 0...400, using: &rng))
                    input = withUnsafeBytes(of: length.bigEndian, Array.init) + rng.bytes(Int.random(in: 0...450, using: &rng))
                }
                var opener = try combination.opener()
                var buffer = buffer(input)
                var sequence: UInt32 = 0
                do {
                    // Each payload consumes bytes, so this ends; the bound only guards the test.
                    for _ in 0..<64 {
                        guard try opener.open(from: &buffer, sequenceNumber: sequence) != nil else { break }
                        sequence &+= 1
                    }
                } catch is SSHProtocolError {
                } catch {
                    XCTFail("\(combination): unexpected error \(error)")
                }
            }
        }
    }
}
