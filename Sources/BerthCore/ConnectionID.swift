/// Identifies one TCP connection everywhere it appears: webhook bodies, container labels, log
/// lines and the audit log file name. 16 random bytes as 32 lowercase hex characters, the
/// ContainerSSH wire form.
public struct ConnectionID: Sendable, Hashable, CustomStringConvertible {
    public let hex: String

    public init() {
        var generator = SystemRandomNumberGenerator()
        var bytes = [UInt8](repeating: 0, count: 16)
        for index in bytes.indices { bytes[index] = UInt8.random(in: 0...255, using: &generator) }
        // UUIDv4 version and variant bits, as ContainerSSH produces them.
        bytes[6] = (bytes[6] & 0x0F) | 0x40
        bytes[8] = (bytes[8] & 0x3F) | 0x80
        self.hex = bytes.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
        }.joined()
    }

    public init?(hex: String) {
        guard hex.count == 32, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        self.hex = hex
    }

    public var description: String { hex }
}
