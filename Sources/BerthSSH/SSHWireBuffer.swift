/// Minimal reader/writer for the SSH wire encoding (RFC 4251 §5) used inside OpenSSH key files.
struct SSHWireReader {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }
    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    var isAtEnd: Bool { bytes.isEmpty }
    var remaining: ArraySlice<UInt8> { bytes }

    mutating func readBytes(_ count: Int) throws -> ArraySlice<UInt8> {
        guard count >= 0, bytes.count >= count else { throw HostKeyError.malformed("truncated key data") }
        let value = bytes.prefix(count)
        bytes = bytes.dropFirst(count)
        return value
    }

    mutating func readUInt32() throws -> UInt32 {
        try readBytes(4).reduce(0) { ($0 << 8) | UInt32($1) }
    }

    mutating func readString() throws -> ArraySlice<UInt8> {
        try readBytes(Int(readUInt32()))
    }

    mutating func readText() throws -> String {
        String(decoding: try readString(), as: UTF8.self)
    }
}

struct SSHWireWriter {
    private(set) var bytes: [UInt8] = []

    mutating func writeUInt32(_ value: UInt32) {
        bytes += [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
    }

    mutating func writeString<Bytes: Collection>(_ value: Bytes) where Bytes.Element == UInt8 {
        writeUInt32(UInt32(value.count))
        bytes += value
    }

    mutating func writeText(_ value: String) { writeString(Array(value.utf8)) }

    /// RFC 4251 mpint for a non-negative big-endian magnitude.
    mutating func writeMPInt<Bytes: Collection>(_ magnitude: Bytes) where Bytes.Element == UInt8 {
        var trimmed = Array(magnitude.drop(while: { $0 == 0 }))
        if let first = trimmed.first, first & 0x80 != 0 { trimmed.insert(0, at: 0) }
        writeString(trimmed)
    }

    mutating func writeRaw(_ value: [UInt8]) { bytes += value }
}
