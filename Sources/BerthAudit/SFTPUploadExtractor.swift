import BerthCBOR
import Foundation

/// Rebuilds the files a user uploaded over SFTP from a recorded sftp session (stdin and stdout
/// intercepted): OPEN requests name the files, HANDLE replies give their handles, WRITE
/// requests carry the bytes at their offsets. SFTP v3 (draft-ietf-secsh-filexfer-02).
public enum SFTPUploadExtractor {
    public struct UploadedFile: Sendable, Equatable {
        public var channel: UInt64
        public var path: String
        public var data: [UInt8]
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// A WRITE names its own offset, so one packet could ask for a terabyte of zeros. The files
    /// together may hold at most as many bytes as the client sent on the sftp channels; a log
    /// that asks for more is corrupt or hostile (or records only the end of a resumed upload).
    public static func extract(_ messages: [AuditMessage]) throws -> [UploadedFile] {
        let sftpChannels = Set(
            messages.compactMap { message -> UInt64? in
                guard message.type == .subsystem, case .text("sftp")? = message.payload?["subsystem"] else { return nil }
                return message.channelID
            })
        var budget = 0
        for message in messages where message.type == .io && message.channelID.map(sftpChannels.contains) == true {
            if case .bytes(let data)? = message.payload?["data"], message.payload?["stream"]?.intValue == 0 { budget += data.count }
        }
        var files: [UploadedFile] = []
        for channel in sftpChannels.sorted() {
            var requests = PacketStream()
            var replies = PacketStream()
            var openPaths: [UInt32: String] = [:]
            var handles: [[UInt8]: Int] = [:]
            for message in messages where message.channelID == channel && message.type == .io {
                guard case .bytes(let data)? = message.payload?["data"], let stream = message.payload?["stream"]?.intValue else { continue }
                if stream == 0 {
                    for packet in requests.feed(data) { try handleRequest(packet, channel, &openPaths, &handles, &files, &budget) }
                } else if stream == 1 {
                    for packet in replies.feed(data) {
                        // SSH_FXP_HANDLE answering an OPEN: the handle now names that file.
                        var reader = Reader(packet)
                        guard reader.byte() == 102, let id = reader.uint32(), let path = openPaths.removeValue(forKey: id),
                            let handle = reader.string()
                        else { continue }
                        handles[handle] = files.count
                        files.append(UploadedFile(channel: channel, path: path, data: []))
                    }
                }
            }
        }
        return files.filter { !$0.data.isEmpty }
    }

    /// Writes the files into `directory` as `N-NAME`, one line per file for the caller to print.
    /// Each is created new (mode 0600, never through a symlink, never over an existing file),
    /// so a name planted in the directory cannot send a recorded upload elsewhere.
    public static func writeFiles(_ files: [UploadedFile], into directory: String) throws -> [String] {
        var written: [String] = []
        for (index, upload) in files.enumerated() {
            let path = "\(directory)/\(fileName(index + 1, upload.path))"
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Failure(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var offset = 0
            while offset < upload.data.count {
                let count = upload.data[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
                guard count > 0 else { throw Failure(description: "cannot write \(path): \(String(cString: strerror(errno)))") }
                offset += count
            }
            written.append(path)
        }
        return written
    }

    /// Only the recorded path's last component, without control characters and short enough
    /// for any file system: the path came from the user's client.
    static func fileName(_ number: Int, _ path: String) -> String {
        let last = path.split(separator: "/").last.map(String.init) ?? ""
        var name = ""
        for character in last where name.utf8.count + character.utf8.count <= 200 {
            name.append(character.unicodeScalars.contains { $0.properties.generalCategory == .control } ? "_" : character)
        }
        if name.isEmpty || name == "." || name == ".." { name = "upload" }
        return "\(number)-\(name)"
    }

    private static func handleRequest(
        _ packet: [UInt8], _ channel: UInt64, _ openPaths: inout [UInt32: String],
        _ handles: inout [[UInt8]: Int], _ files: inout [UploadedFile], _ budget: inout Int
    ) throws {
        var reader = Reader(packet)
        switch reader.byte() {
        case 3:  // SSH_FXP_OPEN id filename pflags attrs
            guard let id = reader.uint32(), let name = reader.string(), let flags = reader.uint32(), flags & 0x02 != 0 else { return }
            openPaths[id] = String(decoding: name, as: UTF8.self)
        case 6:  // SSH_FXP_WRITE id handle offset data
            guard reader.uint32() != nil, let handle = reader.string(), let offset = reader.uint64(), let data = reader.string(),
                let index = handles[handle]
            else { return }
            let size = files[index].data.count
            guard offset <= UInt64(size + budget), Int(offset) + data.count - size <= budget else {
                throw Failure(
                    description: "upload of \(files[index].path.debugDescription) (channel \(channel)): a write at offset \(offset) of \(data.count) bytes "
                        + "needs more than the \(budget) bytes the client sent that are not yet in a file; the audit log is corrupt or the upload was resumed")
            }
            let end = Int(offset) + data.count
            if size < end {
                budget -= end - size
                files[index].data += [UInt8](repeating: 0, count: end - size)
            }
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
