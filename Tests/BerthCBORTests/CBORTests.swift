import Testing
@testable import BerthCBOR

@Suite struct CBORTests {
    private func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    // Examples from RFC 8949 Appendix A.
    @Test(arguments: [
        ("00", CBORValue.unsigned(0)), ("17", .unsigned(23)), ("1818", .unsigned(24)), ("1903e8", .unsigned(1000)),
        ("1a000f4240", .unsigned(1_000_000)), ("1b000000e8d4a51000", .unsigned(1_000_000_000_000)),
        ("20", .int(-1)), ("3863", .int(-100)), ("f4", .bool(false)), ("f5", .bool(true)), ("f6", .null),
        ("40", .bytes([])), ("4401020304", .bytes([1, 2, 3, 4])), ("6161", .text("a")), ("6449455446", .text("IETF")),
        ("62c3bc", .text("ü")), ("83010203", .array([.unsigned(1), .unsigned(2), .unsigned(3)])),
        ("a26161016162820203", .map([CBORPair(.text("a"), .unsigned(1)), CBORPair(.text("b"), .array([.unsigned(2), .unsigned(3)]))])),
        ("fb3ff199999999999a", .double(1.1)),
    ])
    func rfcExamplesDecodeAndEncode(encoded: String, value: CBORValue) throws {
        #expect(try CBORDecoder.decode(hex(encoded)) == value)
        #expect(CBOREncoder.encode(value) == hex(encoded))
    }

    @Test func indefiniteLengthsAndHalfFloats() throws {
        #expect(try CBORDecoder.decode(hex("5f42010243030405ff")) == .bytes([1, 2, 3, 4, 5]))
        #expect(try CBORDecoder.decode(hex("7f657374726561646d696e67ff")) == .text("streaming"))
        #expect(try CBORDecoder.decode(hex("9f018202039f0405ffff")) == .array([.unsigned(1), .array([.unsigned(2), .unsigned(3)]), .array([.unsigned(4), .unsigned(5)])]))
        #expect(try CBORDecoder.decode(hex("bf6346756ef563416d7421ff")) == .map([CBORPair(.text("Fun"), .bool(true)), CBORPair(.text("Amt"), .int(-2))]))
        #expect(try CBORDecoder.decode(hex("f93c00")) == .double(1.0))
        #expect(try CBORDecoder.decode(hex("f9c400")) == .double(-4.0))
    }

    @Test func sequencesWaitForMoreInputWhenTruncated() throws {
        let first = CBOREncoder.encode(.map([CBORPair(.text("Type"), .unsigned(3)), CBORPair(.text("Payload"), .bytes([9, 9]))]))
        let second = CBOREncoder.encode(.text("next"))
        var decoder = CBORDecoder(first + second.dropLast())
        #expect(try decoder.next()["Type"] == .unsigned(3))
        #expect(throws: CBORError.truncated) { try decoder.next() }
        let offset = decoder.offset
        #expect(offset == first.count)
    }

    @Test func malformedInputIsAnError() {
        #expect(throws: CBORError.self) { try CBORDecoder.decode([0x1C]) }
        #expect(throws: CBORError.self) { try CBORDecoder.decode([0x62, 0xFF, 0xFE]) }
        #expect(throws: CBORError.self) { try CBORDecoder.decode([0x01, 0x02]) }
        #expect(throws: CBORError.tooDeep) { try CBORDecoder.decode([UInt8](repeating: 0x81, count: 200) + [0x00]) }
        #expect(throws: CBORError.truncated) { try CBORDecoder.decode([0x9B, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]) }
    }

    @Test func randomValuesRoundTrip() throws {
        var generator = SystemRandomNumberGenerator()
        func random(_ depth: Int) -> CBORValue {
            switch Int.random(in: 0...(depth > 3 ? 5 : 8), using: &generator) {
            case 0: return .unsigned(UInt64.random(in: 0...UInt64.max, using: &generator) >> UInt64.random(in: 0...63, using: &generator))
            case 1: return .negative(UInt64.random(in: 0...100_000, using: &generator))
            case 2: return .bytes((0..<Int.random(in: 0...40, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) })
            case 3: return .text(String(repeating: "é", count: Int.random(in: 0...30, using: &generator)))
            case 4: return .bool(Bool.random(using: &generator))
            case 5: return .double(Double.random(in: -1e9...1e9, using: &generator))
            case 6: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in random(depth + 1) })
            case 7: return .map((0..<Int.random(in: 0...4, using: &generator)).map { _ in CBORPair(.text("k\(Int.random(in: 0...9, using: &generator))"), random(depth + 1)) })
            default: return .tagged(UInt64.random(in: 0...300, using: &generator), random(depth + 1))
            }
        }
        for _ in 0..<500 {
            let value = random(0)
            #expect(try CBORDecoder.decode(CBOREncoder.encode(value)) == value)
        }
    }

    @Test func randomBytesNeverCrashTheDecoder() {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...32, using: &generator)).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var decoder = CBORDecoder(bytes)
            while !decoder.isAtEnd {
                guard (try? decoder.next()) != nil else { break }
            }
        }
    }
}
