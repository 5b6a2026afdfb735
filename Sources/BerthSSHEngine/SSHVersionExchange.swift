import BerthSSHWire
import NIOCore

/// Reads the peer's identification line (RFC 4253 §4.2). Lines before it that do not start with
/// "SSH-" are skipped (servers may send a banner this way; some clients do too), but only a few
/// and only short ones, so a peer cannot make us buffer without end.
struct SSHVersionReader {
    /// RFC 4253 §4.2: the identification line is at most 255 characters including CR LF.
    static let maxVersionLineLength = 255
    static let maxOtherLineLength = 1024
    static let maxOtherLines = 32

    private(set) var skippedLines = 0

    /// The identification line without CR LF once it is complete (consumed from `buffer`), nil
    /// while more bytes are needed.
    mutating func read(from buffer: inout ByteBuffer) throws -> String? {
        while true {
            let view = buffer.readableBytesView
            let isVersionLine = view.starts(with: "SSH-".utf8.prefix(view.count))
            guard let newline = view.firstIndex(of: UInt8(ascii: "\n")) else {
                let limit = isVersionLine ? Self.maxVersionLineLength : Self.maxOtherLineLength
                if view.count >= limit { throw Self.tooLong(isVersionLine: isVersionLine, limit: limit) }
                return nil
            }
            let lineLength = newline - view.startIndex + 1
            var line = view[view.startIndex..<newline]
            if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
            if !isVersionLine {
                if lineLength > Self.maxOtherLineLength { throw Self.tooLong(isVersionLine: false, limit: Self.maxOtherLineLength) }
                skippedLines += 1
                if skippedLines > Self.maxOtherLines {
                    throw SSHProtocolError(
                        "SSH_VERSION_TOO_MANY_LINES",
                        "more than \(Self.maxOtherLines) lines before the SSH identification line",
                        disconnectReason: SSHDisconnectReason.protocolVersionNotSupported)
                }
                buffer.moveReaderIndex(forwardBy: lineLength)
                continue
            }
            if lineLength > Self.maxVersionLineLength { throw Self.tooLong(isVersionLine: true, limit: Self.maxVersionLineLength) }
            buffer.moveReaderIndex(forwardBy: lineLength)
            return try Self.validate(Array(line))
        }
    }

    static func validate(_ line: [UInt8]) throws -> String {
        if line.contains(0) {
            throw SSHProtocolError(
                "SSH_VERSION_INVALID", "the identification line contains a NUL byte",
                disconnectReason: SSHDisconnectReason.protocolVersionNotSupported)
        }
        let text = String(decoding: line, as: UTF8.self)
        guard text.hasPrefix("SSH-2.0-") || text.hasPrefix("SSH-1.99-") else {
            let shown = text.prefix(64)
            throw SSHProtocolError(
                "SSH_VERSION_UNSUPPORTED",
                "unsupported protocol version in \"\(shown)\": only SSH-2.0 is spoken",
                disconnectReason: SSHDisconnectReason.protocolVersionNotSupported)
        }
        return text
    }

    private static func tooLong(isVersionLine: Bool, limit: Int) -> SSHProtocolError {
        SSHProtocolError(
            "SSH_VERSION_LINE_TOO_LONG",
            isVersionLine
                ? "identification line longer than \(limit) bytes"
                : "line before the identification longer than \(limit) bytes",
            disconnectReason: SSHDisconnectReason.protocolVersionNotSupported)
    }
}
