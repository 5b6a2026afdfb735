import NIOCore

/// Removes the 4-byte little-endian PID that `agent console --pid` writes before the program's
/// output. The bytes may arrive split across reads, and through a TTY the line discipline turns
/// a 0x0A byte into 0x0D 0x0A; both are undone here (ContainerSSH gets them wrong).
public struct PIDPrefixDecoder: Sendable {
    private let tty: Bool
    private var bytes: [UInt8] = []
    private var pendingCarriageReturn = false
    public private(set) var pid: UInt32?

    public init(tty: Bool) { self.tty = tty }

    /// Returns program output that follows the PID (possibly empty), or nil while the PID is
    /// still incomplete.
    public mutating func feed(_ input: ByteBuffer) -> ByteBuffer? {
        guard pid == nil else { return input }
        var input = input
        while pid == nil, let byte = input.readInteger(as: UInt8.self) {
            if tty && pendingCarriageReturn {
                pendingCarriageReturn = false
                if byte == 0x0A {
                    bytes.append(0x0A)
                } else {
                    bytes.append(0x0D)
                    if bytes.count < 4 { accept(byte) } else { input.moveReaderIndex(to: input.readerIndex - 1) }
                }
            } else {
                accept(byte)
            }
            if bytes.count == 4 {
                pid = bytes.enumerated().reduce(UInt32(0)) { $0 | (UInt32($1.element) << (8 * UInt32($1.offset))) }
            }
        }
        return pid == nil ? nil : input
    }

    private mutating func accept(_ byte: UInt8) {
        if tty && byte == 0x0D {
            pendingCarriageReturn = true
        } else {
            bytes.append(byte)
        }
    }

    /// At end of stream: a lone trailing carriage return was a PID byte after all.
    public mutating func finish() {
        if pid == nil, pendingCarriageReturn, bytes.count == 3 {
            bytes.append(0x0D)
            pid = bytes.enumerated().reduce(UInt32(0)) { $0 | (UInt32($1.element) << (8 * UInt32($1.offset))) }
        }
    }
}

/// A program's stdout on its way to the client; when the agent was started with `--pid`, the
/// PID in front is taken off first and handed to the caller once.
public struct ProgramStdout: Sendable {
    private var decoder: PIDPrefixDecoder?

    public init(stripPID: Bool, tty: Bool) {
        decoder = stripPID ? PIDPrefixDecoder(tty: tty) : nil
    }

    /// Writes the program's bytes to `channel`; returns the PID in the call that completes it.
    public mutating func relay(_ bytes: ByteBuffer, to channel: any SessionChannel) async throws -> UInt32? {
        guard var current = decoder else {
            try await channel.writeStdout(bytes)
            return nil
        }
        let rest = current.feed(bytes)
        decoder = current.pid == nil ? current : nil
        if let rest, rest.readableBytes > 0 { try await channel.writeStdout(rest) }
        return current.pid
    }
}
