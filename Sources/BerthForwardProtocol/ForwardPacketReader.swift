import BerthCBOR

/// Splits a byte stream into packets as bytes arrive. Input that is not the protocol is an
/// error, never a crash, and buffered bytes are bounded: one packet may not exceed `maximumPacket`.
public struct ForwardPacketReader: Sendable {
    public static let defaultMaximumPacket = 4 << 20

    private var buffer: [UInt8] = []
    private let maximumPacket: Int

    public init(maximumPacket: Int = ForwardPacketReader.defaultMaximumPacket) {
        self.maximumPacket = maximumPacket
    }

    /// Adds bytes and returns every packet now complete.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) throws(ForwardProtocolError) -> [ForwardPacket] where Bytes.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var decoder = CBORDecoder(buffer)
        var packets: [ForwardPacket] = []
        while !decoder.isAtEnd {
            let value: CBORValue
            do {
                value = try decoder.next()
            } catch CBORError.truncated {
                break
            } catch {
                throw ForwardProtocolError("malformed packet: \(error)")
            }
            packets.append(try ForwardPacket(decoding: value))
        }
        buffer.removeFirst(decoder.offset)
        if buffer.count > maximumPacket { throw ForwardProtocolError("packet larger than \(maximumPacket) bytes") }
        return packets
    }
}
