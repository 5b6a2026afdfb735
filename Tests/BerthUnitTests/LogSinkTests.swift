#if os(Linux)
import Foundation
import Testing
@testable import BerthObservability

@Suite struct LogSinkTests {
    private func mode(_ path: String) throws -> Int {
        try #require(FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
    }

    /// After rotation moved the file away, the reopened file has the first one's mode, not the
    /// umask's.
    @Test func aReopenedLogFileKeepsItsMode() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("berth-log-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = "\(directory)/berth.log"
        let previous = umask(0o022)
        defer { umask(previous) }
        let sink = try LogSink(appendingTo: path)
        sink.write(line: "first")
        #expect(try mode(path) == 0o640)
        try FileManager.default.moveItem(atPath: path, toPath: "\(path).1")
        try sink.reopen()
        sink.write(line: "second")
        #expect(try mode(path) == 0o640)
        #expect(FileManager.default.contents(atPath: path) == Data("second\n".utf8))
        #expect(FileManager.default.contents(atPath: "\(path).1") == Data("first\n".utf8))
    }
}
#endif
