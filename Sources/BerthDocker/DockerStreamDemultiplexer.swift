import NIOCore

/// Splits the engine's multiplexed exec/attach stream (used without a TTY): frames of an 8-byte
/// header — stream (0 stdin, 1 stdout, 2 stderr), three zero bytes, big-endian uint32 length —
/// followed by the payload. Frames may arrive split across reads or several per read.
public struct DockerStreamDemultiplexer: Sendable {
    public enum Stream: UInt8, Sendable { case stdin = 0, stdout = 1, stderr = 2 }

    public struct MalformedFrame: Error, Equatable, CustomStringConvertible {
        public let header: [UInt8]
        public var description: String { "malformed stream frame header \(header)" }
    }

    private var buffer = ByteBuffer()
    private var pending: (stream: Stream, remaining: Int)?

    public init() {}

    /// Feeds bytes and returns the payload pieces now complete enough to forward. Payload is
    /// forwarded as it arrives rather than after a whole frame, so large frames stream.
    public mutating func feed(_ input: ByteBuffer) throws -> [(Stream, ByteBuffer)] {
        // Usually nothing is left over from the previous read: work on the input itself (payload
        // slices share its storage) instead of copying every byte into the carry-over buffer.
        var input = input
        if buffer.readableBytes == 0 {
            swap(&buffer, &input)
        } else {
            buffer.writeBuffer(&input)
        }
        var output: [(Stream, ByteBuffer)] = []
        while true {
            if let current = pending {
                let count = min(current.remaining, buffer.readableBytes)
                if count > 0, let slice = buffer.readSlice(length: count) {
                    output.append((current.stream, slice))
                }
                let remaining = current.remaining - count
                pending = remaining > 0 ? (current.stream, remaining) : nil
                if remaining > 0 { break }
                continue
            }
            // The header as two big-endian words, without allocating per frame.
            guard buffer.readableBytes >= 8, let word = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
                let length = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self)
            else { break }
            guard word & 0x00FF_FFFF == 0, let stream = Stream(rawValue: UInt8(word >> 24)) else {
                throw MalformedFrame(header: buffer.getBytes(at: buffer.readerIndex, length: 8) ?? [])
            }
            buffer.moveReaderIndex(forwardBy: 8)
            if length > 0 { pending = (stream, Int(length)) }
        }
        if buffer.readableBytes == 0 {
            buffer = ByteBuffer()
        } else if buffer.readerIndex > 0 {
            // Keep only the few bytes of an incomplete header, in storage of their own.
            var rest = ByteBuffer()
            rest.writeBuffer(&buffer)
            buffer = rest
        }
        return output
    }

    /// True when the stream ended in the middle of a frame.
    public var isMidFrame: Bool { pending != nil || buffer.readableBytes > 0 }
}
