import BerthCBOR
import Foundation
import Testing
@testable import BerthAudit

@Suite struct AuditTests {
    /// The worked example of AWS's Signature Version 4 documentation for S3 (GET with a Range
    /// header, empty payload), signed with the documented example keys.
    @Test func signatureMatchesTheAWSDocumentationExample() {
        let signer = S3Signer(accessKey: "AKIAIOSFODNN7EXAMPLE", secretKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", region: "us-east-1")
        let date = Date(timeIntervalSince1970: 1_369_353_600)  // 2013-05-24T00:00:00Z
        let headers = signer.sign(
            method: "GET", url: URL(string: "https://examplebucket.s3.amazonaws.com/test.txt")!,
            headers: ["Range": "bytes=0-9"], body: [], date: date)
        #expect(
            headers["authorization"]
                == "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        )
    }

    @Test func headerIsFortyBytesWithMagicAndVersionTwo() {
        let header = BinaryAuditFormat.header
        #expect(header.count == 40)
        #expect(Array(header[0..<21]) == Array("ContainerSSH-Auditlog".utf8))
        #expect(header[21..<32].allSatisfy { $0 == 0 })
        #expect(Array(header[32..<40]) == [2, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test func binaryLogRoundTripsAndSurvivesTruncation() throws {
        let encoder = BinaryAuditEncoder(connectionID: "abc")
        var bytes: [UInt8] = []
        var sent: [AuditMessage] = []
        for index in 0..<50 {
            let message = AuditMessage(
                connectionID: "abc", timestamp: 1_700_000_000_000_000_000 + Int64(index), type: .io,
                payload: AuditPayload().int("stream", 1).bytes("data", Array(repeating: UInt8(index), count: 100)).value,
                channelID: 0)
            sent.append(message)
            bytes += encoder.encode(message).flatMap(\.bytes)
        }
        let complete = bytes + encoder.finish().flatMap(\.bytes)
        #expect(try AuditDecoder.decode(complete) == sent)
        // Without the trailer (a crash), everything flushed is still there.
        #expect(try AuditDecoder.decode(bytes) == sent)
        // Cut in the middle of the stream: a prefix of the messages, never an error.
        let partial = try AuditDecoder.decode(Array(bytes.prefix(bytes.count / 2)))
        #expect(!partial.isEmpty && partial.count < sent.count && Array(sent.prefix(partial.count)) == partial)
    }

    @Test func decoderRefusesOtherFilesClearly() {
        #expect(throws: AuditDecoder.Failure.self) { try AuditDecoder.decode(Array("hello".utf8)) }
        var wrongVersion = BinaryAuditFormat.header
        wrongVersion[32] = 3
        #expect(throws: AuditDecoder.Failure.self) { try AuditDecoder.decode(wrongVersion) }
    }

    @Test func sftpUploadsAreRebuiltFromRecordedPackets() throws {
        func packet(_ body: [UInt8]) -> [UInt8] { be32(UInt32(body.count)) + body }
        func be32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> UInt32(24 - 8 * $0)) & 0xFF) } }
        func string(_ bytes: [UInt8]) -> [UInt8] { be32(UInt32(bytes.count)) + bytes }
        let open = packet([3] + be32(7) + string(Array("/tmp/x.txt".utf8)) + be32(0x1A) + be32(0))
        let handle = packet([102] + be32(7) + string([9, 9]))
        let write1 = packet([6] + be32(8) + string([9, 9]) + be32(0) + be32(0) + string(Array("hello ".utf8)))
        let write2 = packet([6] + be32(9) + string([9, 9]) + be32(0) + be32(6) + string(Array("world".utf8)))
        func io(_ stream: Int64, _ data: [UInt8]) -> AuditMessage {
            AuditMessage(connectionID: "c", timestamp: 0, type: .io, payload: AuditPayload().int("stream", stream).bytes("data", data).value, channelID: 1)
        }
        let requests = open + write1 + write2
        var messages = [AuditMessage(connectionID: "c", timestamp: 0, type: .subsystem, payload: AuditPayload().int("requestId", 0).text("subsystem", "sftp").value, channelID: 1)]
        // Split requests at awkward places; the reply arrives between them.
        messages.append(io(0, Array(requests[0..<5])))
        messages.append(io(0, Array(requests[5..<open.count])))
        messages.append(io(1, handle))
        messages.append(io(0, Array(requests[open.count...])))
        let files = try SFTPUploadExtractor.extract(messages)
        #expect(files == [SFTPUploadExtractor.UploadedFile(channel: 1, path: "/tmp/x.txt", data: Array("hello world".utf8))])
    }

    /// A recorded sftp channel: OPEN of `path` answered with a handle, then `writes` (offset, data).
    private func sftpSession(path: String, writes: [(UInt64, [UInt8])]) -> [AuditMessage] {
        func be32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8((value >> UInt32(24 - 8 * $0)) & 0xFF) } }
        func packet(_ body: [UInt8]) -> [UInt8] { be32(UInt32(body.count)) + body }
        func string(_ bytes: [UInt8]) -> [UInt8] { be32(UInt32(bytes.count)) + bytes }
        func io(_ stream: Int64, _ data: [UInt8]) -> AuditMessage {
            AuditMessage(connectionID: "c", timestamp: 0, type: .io, payload: AuditPayload().int("stream", stream).bytes("data", data).value, channelID: 1)
        }
        var messages = [AuditMessage(connectionID: "c", timestamp: 0, type: .subsystem, payload: AuditPayload().int("requestId", 0).text("subsystem", "sftp").value, channelID: 1)]
        messages.append(io(0, packet([3] + be32(7) + string(Array(path.utf8)) + be32(0x1A) + be32(0))))
        messages.append(io(1, packet([102] + be32(7) + string([9]))))
        for (number, (offset, data)) in writes.enumerated() {
            messages.append(io(0, packet([6] + be32(UInt32(8 + number)) + string([9]) + be32(UInt32(offset >> 32)) + be32(UInt32(offset & 0xFFFF_FFFF)) + string(data))))
        }
        return messages
    }

    @Test func sftpWritesCannotAskForMoreBytesThanTheClientSent() throws {
        // One packet asking for a terabyte of zeros before four bytes.
        #expect(throws: SFTPUploadExtractor.Failure.self) {
            try SFTPUploadExtractor.extract(self.sftpSession(path: "/x", writes: [(1 << 40 - 4, Array("tail".utf8))]))
        }
        // Many small holes add up too.
        #expect(throws: SFTPUploadExtractor.Failure.self) {
            try SFTPUploadExtractor.extract(self.sftpSession(path: "/x", writes: (0..<100).map { (UInt64($0) * 1_000, [1]) }))
        }
        // Overwriting what is already there, and a small hole, stay within what was sent.
        let files = try SFTPUploadExtractor.extract(sftpSession(path: "/x", writes: [(0, Array("abcd".utf8)), (0, Array("AB".utf8)), (6, Array("z".utf8))]))
        #expect(files.map(\.data) == [Array("ABcd".utf8) + [0, 0] + Array("z".utf8)])
    }

    @Test func decompressedSizeIsBounded() throws {
        let encoder = BinaryAuditEncoder(connectionID: "abc")
        let message = AuditMessage(
            connectionID: "abc", timestamp: 1, type: .io,
            payload: AuditPayload().int("stream", 1).bytes("data", Array(repeating: 0, count: 1 << 20)).value, channelID: 0)
        let bytes = encoder.encode(message).flatMap(\.bytes) + encoder.finish().flatMap(\.bytes)
        #expect(bytes.count < 1 << 16, "zeros compress well: the kind of file that would expand without a bound")
        #expect(try AuditDecoder.decode(bytes) == [message])
        #expect(throws: AuditDecoder.Failure.self) { try AuditDecoder.decode(bytes, maxBytes: 1 << 19) }
    }

    @Test func extractedFilesStayInTheDirectoryAndNeverReplaceAnything() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-sftp-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(SFTPUploadExtractor.fileName(1, "/a/../../etc/passwd") == "1-passwd")
        #expect(SFTPUploadExtractor.fileName(2, "/a/..") == "2-upload")
        #expect(SFTPUploadExtractor.fileName(3, "/a/b\u{1B}]0;x\u{07}\n") == "3-b_]0;x__")
        #expect(SFTPUploadExtractor.fileName(4, String(repeating: "é", count: 300)).utf8.count <= 202)
        let upload = SFTPUploadExtractor.UploadedFile(channel: 1, path: "/tmp/report.txt", data: Array("data".utf8))
        // A symlink planted where the first file goes: the write fails instead of following it.
        let outside = "\(directory)-outside"
        defer { try? FileManager.default.removeItem(atPath: outside) }
        try FileManager.default.createSymbolicLink(atPath: "\(directory)/1-report.txt", withDestinationPath: outside)
        #expect(throws: SFTPUploadExtractor.Failure.self) { try SFTPUploadExtractor.writeFiles([upload], into: directory) }
        #expect(!FileManager.default.fileExists(atPath: outside))
        try FileManager.default.removeItem(atPath: "\(directory)/1-report.txt")
        #expect(try SFTPUploadExtractor.writeFiles([upload], into: directory) == ["\(directory)/1-report.txt"])
        #expect(FileManager.default.contents(atPath: "\(directory)/1-report.txt") == Data("data".utf8))
        let mode = try FileManager.default.attributesOfItem(atPath: "\(directory)/1-report.txt")[.posixPermissions] as? Int
        #expect(mode == 0o600)
    }
}
