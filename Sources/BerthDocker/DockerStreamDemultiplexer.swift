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
        var input = input
        buffer.writeBuffer(&input)
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
            guard buffer.readableBytes >= 8, let header = buffer.readBytes(length: 8) else { break }
            guard let stream = Stream(rawValue: header[0]), header[1] == 0, header[2] == 0, header[3] == 0 else {
                throw MalformedFrame(header: header)
            }
            let length = header[4...7].reduce(0) { ($0 << 8) | Int($1) }
            if length > 0 { pending = (stream, length) }
        }
        buffer.discardReadBytes()
        return output
    }

    /// True when the stream ended in the middle of a frame.
    public var isMidFrame: Bool { pending != nil || buffer.readableBytes > 0 }
}
