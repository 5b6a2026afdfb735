// Just enough DER (X.690) to pick the algorithm out of PKCS#8/SEC1 structures, take the
// numbers out of a PKCS#1 RSAPrivateKey, and build a PKCS#1 RSAPublicKey. The keys themselves
// are decoded by swift-crypto; this only routes bytes to the right initialiser.

struct DERReader {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }
    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    var isAtEnd: Bool { bytes.isEmpty }

    /// One TLV: its tag byte and content. Only definite lengths up to 4 length bytes (DER).
    mutating func read() throws -> (tag: UInt8, content: ArraySlice<UInt8>) {
        guard bytes.count >= 2 else { throw SSHKeyError.malformed("truncated DER data") }
        let tag = bytes[bytes.startIndex]
        if tag & 0x1F == 0x1F { throw SSHKeyError.malformed("unsupported DER tag") }
        var index = bytes.startIndex + 1
        let first = bytes[index]
        index += 1
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let count = Int(first & 0x7F)
            guard count >= 1, count <= 4, bytes.endIndex - index >= count else { throw SSHKeyError.malformed("bad DER length") }
            for byte in bytes[index..<(index + count)] { length = (length << 8) | Int(byte) }
            index += count
        }
        guard bytes.endIndex - index >= length else { throw SSHKeyError.malformed("truncated DER data") }
        let content = bytes[index..<(index + length)]
        bytes = bytes[(index + length)...]
        return (tag, content)
    }

    mutating func read(tag expected: UInt8, _ what: String) throws -> ArraySlice<UInt8> {
        let (tag, content) = try read()
        guard tag == expected else { throw SSHKeyError.malformed("\(what): unexpected DER tag 0x\(String(tag, radix: 16))") }
        return content
    }

    mutating func readSequence(_ what: String) throws -> DERReader {
        DERReader(try read(tag: 0x30, what))
    }

    /// A non-negative INTEGER as its big-endian magnitude without leading zeros.
    mutating func readUnsignedInteger(_ what: String) throws -> [UInt8] {
        let content = try read(tag: 0x02, what)
        guard let first = content.first else { throw SSHKeyError.malformed("\(what): empty INTEGER") }
        guard first & 0x80 == 0 else { throw SSHKeyError.malformed("\(what): negative INTEGER") }
        return Array(content.drop(while: { $0 == 0 }))
    }

    mutating func readOID(_ what: String) throws -> [UInt8] {
        Array(try read(tag: 0x06, what))
    }
}

enum DERWriter {
    static func length(_ count: Int) -> [UInt8] {
        if count < 0x80 { return [UInt8(count)] }
        var bytes: [UInt8] = []
        var value = count
        while value > 0 {
            bytes.insert(UInt8(value & 0xFF), at: 0)
            value >>= 8
        }
        return [0x80 | UInt8(bytes.count)] + bytes
    }

    static func unsignedInteger(_ magnitude: [UInt8]) -> [UInt8] {
        var body = Array(magnitude.drop(while: { $0 == 0 }))
        if body.isEmpty || body[0] & 0x80 != 0 { body.insert(0, at: 0) }
        return [0x02] + length(body.count) + body
    }

    static func sequence(_ elements: [[UInt8]]) -> [UInt8] {
        let body = elements.flatMap { $0 }
        return [0x30] + length(body.count) + body
    }
}

enum KeyOID {
    // Content bytes of the OIDs that select a key's algorithm.
    static let rsaEncryption: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01]  // 1.2.840.113549.1.1.1
    static let ecPublicKey: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]  // 1.2.840.10045.2.1
    static let ed25519: [UInt8] = [0x2B, 0x65, 0x70]  // 1.3.101.112
    static let ed448: [UInt8] = [0x2B, 0x65, 0x71]
    static let dsa: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01]
    static let secp256r1: [UInt8] = [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07]  // 1.2.840.10045.3.1.7
    static let secp384r1: [UInt8] = [0x2B, 0x81, 0x04, 0x00, 0x22]  // 1.3.132.0.34
    static let secp521r1: [UInt8] = [0x2B, 0x81, 0x04, 0x00, 0x23]  // 1.3.132.0.35
}
