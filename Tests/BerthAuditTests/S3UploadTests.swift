import Foundation
import Logging
import Testing
@testable import BerthAudit

@Suite struct S3UploadTests {
    /// Stands in for S3: fails the objects it is told to, for as long as it is told to.
    actor FakeS3: AuditUploadTarget {
        var uploaded: [String] = []
        var attempts: [String: Int] = [:]
        var refuse: Set<String> = []
        var outageCalls = 0

        init(refuse: Set<String> = [], outageCalls: Int = 0) {
            self.refuse = refuse
            self.outageCalls = outageCalls
        }

        func upload(key: String, file: String, info: AuditObjectInfo) async throws {
            attempts[key, default: 0] += 1
            if outageCalls > 0 {
                outageCalls -= 1
                throw AuditStorageError(description: "connection refused", outage: true)
            }
            if refuse.contains(key) { throw AuditStorageError(description: "S3 PUT /\(key) answered 400: InvalidArgument") }
            uploaded.append(key)
        }

        nonisolated func shutdown() async {}
    }

    private func staging(_ names: [String]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-s3-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in names {
            FileManager.default.createFile(atPath: "\(directory)/\(name)", contents: Data(name.utf8))
            FileManager.default.createFile(atPath: "\(directory)/\(name).meta", contents: Data(#"{"ip":"127.0.0.1","username":"u"}"#.utf8))
        }
        return directory
    }

    private func waitFor(_ condition: () async -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while !(await condition()) {
            try #require(ContinuousClock.now < deadline, "condition not reached in time")
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    private func uploader(_ fake: FakeS3, _ directory: String) -> S3Uploader {
        S3Uploader(client: fake, directory: directory, logger: Logger(label: "test"), maxAttempts: 3, firstDelay: .milliseconds(1), maxDelay: .milliseconds(4))
    }

    @Test func aPoisonObjectIsParkedAndTheQueueGoesOn() async throws {
        let directory = try staging(["a", "b-poison", "c"])
        let fake = FakeS3(refuse: ["b-poison"])
        let uploader = uploader(fake, directory)
        await uploader.start()
        FileManager.default.createFile(atPath: "\(directory)/d", contents: Data("d".utf8))
        await uploader.enqueue("d")
        try await waitFor { await uploader.backlog == 0 && FileManager.default.fileExists(atPath: "\(directory)/parked/b-poison") }
        #expect(Set(await fake.uploaded) == ["a", "c", "d"])
        #expect(await fake.attempts["b-poison"] == 3)
        // Parked beside its metadata, out of the staging directory; a restart leaves it there.
        #expect(FileManager.default.fileExists(atPath: "\(directory)/parked/b-poison.meta"))
        #expect(!FileManager.default.fileExists(atPath: "\(directory)/b-poison"))
        await uploader.shutdown()
        let again = self.uploader(fake, directory)
        await again.start()
        #expect(await again.backlog == 0)
        await again.shutdown()
        #expect(await fake.attempts["b-poison"] == 3)
    }

    @Test func anOutageParksNothing() async throws {
        let directory = try staging(["a", "b"])
        let fake = FakeS3(outageCalls: 12)
        let uploader = uploader(fake, directory)
        await uploader.start()
        // Every staged file goes once uploaded, none to parked/.
        try await waitFor { (try? FileManager.default.contentsOfDirectory(atPath: directory).isEmpty) == true }
        #expect(Set(await fake.uploaded) == ["a", "b"])
        await uploader.shutdown()
    }

    @Test func oddUsernamesBecomeSafeHeaderValues() throws {
        for odd in ["zoë", "a\r\nx-amz-acl: public-read", "two  spaces", " lead", "=?UTF-8?B?Ym9i?=", "tab\there", "名前"] {
            let value = S3Metadata.headerValue(odd)
            #expect(value.utf8.allSatisfy { (0x21...0x7E).contains($0) }, "\(value)")
            // RFC 2047 B encoding of the UTF-8 bytes, which S3 decodes on the way in.
            #expect(value.hasPrefix("=?UTF-8?B?") && value.hasSuffix("?="))
            let base64 = String(value.dropFirst(10).dropLast(2))
            #expect(Data(base64Encoded: base64).map { String(decoding: $0, as: UTF8.self) } == odd)
        }
        for plain in ["alice", "bob.smith@example.com", "a b", "127.0.0.1", "it's \"quoted\""] {
            #expect(S3Metadata.headerValue(plain) == plain)
        }
    }

    @Test func signatureFoldsSpacesAsS3Does() {
        let signer = S3Signer(accessKey: "AKID", secretKey: "secret", region: "us-east-1")
        let url = URL(string: "https://bucket.s3.amazonaws.com/key")!
        let date = Date(timeIntervalSince1970: 1_700_000_000)
        let folded = signer.sign(method: "PUT", url: url, headers: ["x-amz-meta-a": "one two"], body: [], date: date)
        let spaced = signer.sign(method: "PUT", url: url, headers: ["x-amz-meta-a": "  one   two "], body: [], date: date)
        #expect(folded["authorization"] == spaced["authorization"])
    }
}
