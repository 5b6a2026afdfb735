import BerthCBOR

/// Rebuilds the files a user uploaded over SFTP from a recorded sftp session (stdin and stdout
/// intercepted): OPEN requests name the files, HANDLE replies give their handles, WRITE
/// requests carry the bytes at their offsets. SFTP v3 (draft-ietf-secsh-filexfer-02).
public enum SFTPUploadExtractor {
    public struct UploadedFile: Sendable, Equatable {
        public var channel: UInt64
        public var path: String
        public var data: [UInt8]
    }

    public static func extract(_ messages: [AuditMessage]) -> [UploadedFile] {
        let sftpChannels = Set(messages.compactMap { message -> UInt64? in
            guard message.type == .subsystem, case .text("sftp")? = message.payload?["subsystem"] else { return nil }
            return message.channelID
        })
        var files: [UploadedFile] = []
        for channel in sftpChannels.sorted() {
            var requests = PacketStream()
            var replies = PacketStream()
            var openPaths: [UInt32: String] = [:]
            var handles: [[UInt8]: Int] = [:]
            for message in messages where message.channelID == channel && message.type == .io {
                guard case .bytes(let data)? = message.payload?["data"], let stream = message.payload?["stream"]?.intValue else { continue }
                if stream == 0 {
                    for packet in requests.feed(data) { handleRequest(packet, channel, &openPaths, &handles, &files) }
                } else if stream == 1 {
                    for packet in replies.feed(data) {
                        // SSH_FXP_HANDLE answering an OPEN: the handle now names that file.
                        var reader = Reader(packet)
                        guard reader.byte() == 102, let id = reader.uint32(), let path = openPaths.removeValue(forKey: id),
                              let handle = reader.string() else { continue }
                        handles[handle] = files.count
                        files.append(UploadedFile(channel: channel, path: path, data: []))
                    }
                }
            }
        }
        return files.filter { !$0.data.isEmpty }
    }

    private static func handleRequest(_ packet: [UInt8], _ channel: UInt64, _ openPaths: inout [UInt32: String],
                                      _ handles: inout [[UInt8]: Int], _ files: inout [UploadedFile]) {
        var reader = Reader(packet)
        switch reader.byte() {
        case 3:  // SSH_FXP_OPEN id filename pflags attrs
            guard let id = reader.uint32(), let name = reader.string(), let flags = reader.uint32(), flags & 0x02 != 0 else { return }
            openPaths[id] = String(decoding: name, as: UTF8.self)
        case 6:  // SSH_FXP_WRITE id handle offset data
            guard reader.uint32() != nil, let handle = reader.string(), let offset = reader.uint64(), let data = reader.string(),
                  let index = handles[handle] else { return }
            let end = Int(offset) + data.count
            guard offset < 1 << 40 else { return }
            if files[index].data.count < end { files[index].data += [UInt8](repeating: 0, count: end - files[index].data.count) }
            files[index].data.replaceSubrange(Int(offset)..<end, with: data)
        default:
            return
        }
    }

    /// SFTP packets are uint32 length + body; recorded chunks split them anywhere.
    private struct PacketStream {
        var buffer: [UInt8] = []

        mutating func feed(_ bytes: [UInt8]) -> [[UInt8]] {
            buffer += bytes
            var packets: [[UInt8]] = []
            var offset = 0
            while buffer.count - offset >= 4 {
                let length = Int(buffer[offset..<offset + 4].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) })
                guard length <= 1 << 24 else { buffer = []; return packets }
                guard buffer.count - offset - 4 >= length else { break }
                packets.append(Array(buffer[(offset + 4)..<(offset + 4 + length)]))
                offset += 4 + length
            }
            buffer.removeFirst(offset)
            return packets
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        init(_ bytes: [UInt8]) { self.bytes = bytes }

        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func uint32() -> UInt32? {
            guard bytes.count - offset >= 4 else { return nil }
            defer { offset += 4 }
            return bytes[offset..<offset + 4].reduce(UInt32(0)) { ($0 << 8) | UInt32($1) }
        }

        mutating func uint64() -> UInt64? {
            guard let high = uint32(), let low = uint32() else { return nil }
            return UInt64(high) << 32 | UInt64(low)
        }

        mutating func string() -> [UInt8]? {
            guard let length = uint32(), bytes.count - offset >= Int(length) else { return nil }
            defer { offset += Int(length) }
            return Array(bytes[offset..<offset + Int(length)])
        }
    }
}
