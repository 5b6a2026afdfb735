import CZlib

/// A gzip stream written piece by piece: every `write` ends with a sync flush, so what has been
/// written so far decompresses even if the process dies before `finish` adds the trailer.
/// zlib through the system library. compress-nio (already built for Hummingbird's WebSocket)
/// wraps the same zlib: on audit-shaped writes (64 B to 16 KiB, a sync flush each) it measured
/// the same speed and wrote the same bytes (2026-12-05). This small wrapper stays because
/// `GzipReader` needs what that library's stream API does not give directly: a stream cut
/// short (ContainerSSH writes no trailer, a crash leaves none) keeps what came out, and a cap on
/// what a small input may expand to.
final class GzipWriter {
    private var stream = z_stream()
    private var finished = false

    init() {
        let status = berth_deflate_init_gzip(&stream)
        precondition(status == Z_OK, "zlib deflateInit2 failed: \(status)")
    }

    deinit { deflateEnd(&stream) }

    /// Compresses `bytes` and returns everything needed to decompress them (sync flush).
    func write(_ bytes: [UInt8]) -> [UInt8] { run(bytes, flush: Z_SYNC_FLUSH) }

    /// The end of the stream with its trailer.
    func finish() -> [UInt8] {
        guard !finished else { return [] }
        finished = true
        return run([], flush: Z_FINISH)
    }

    private func run(_ input: [UInt8], flush: Int32) -> [UInt8] {
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        var input = input
        input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { out -> Int in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    deflate(&stream, flush)
                    return out.count - Int(stream.avail_out)
                }
                output.append(contentsOf: chunk[0..<produced])
            } while stream.avail_out == 0
        }
        stream.next_in = nil
        return output
    }
}

/// Decompresses a gzip stream that may have no trailer (ContainerSSH never writes one, and a
/// log cut short by a crash ends mid-stream). Returns what could be decompressed.
enum GzipReader {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// At most `limit` bytes come out: a few megabytes of gzip can expand a thousandfold.
    static func decompress(_ bytes: [UInt8], limit: Int = .max) throws -> [UInt8] {
        var stream = z_stream()
        guard berth_inflate_init_gzip(&stream) == Z_OK else { throw Failure(description: "zlib inflateInit2 failed") }
        defer { inflateEnd(&stream) }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        var input = bytes
        var status: Int32 = Z_OK
        var exceeded = false
        input.withUnsafeMutableBufferPointer { inputBuffer in
            stream.next_in = inputBuffer.baseAddress
            stream.avail_in = UInt32(inputBuffer.count)
            repeat {
                let produced = chunk.withUnsafeMutableBufferPointer { out -> Int in
                    stream.next_out = out.baseAddress
                    stream.avail_out = UInt32(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                guard produced <= limit - output.count else {
                    exceeded = true
                    return
                }
                output.append(contentsOf: chunk[0..<produced])
            } while status == Z_OK && (stream.avail_in > 0 || stream.avail_out == 0)
        }
        if exceeded { throw Failure(description: "decompresses to more than \(limit) bytes") }
        // Z_BUF_ERROR here means the input ended early: keep what came out.
        guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else {
            throw Failure(description: "not a gzip stream (zlib status \(status))")
        }
        return output
    }
}
