import BerthConfig
import BerthCore
import Foundation
import Testing
@testable import BerthDocker

@Suite struct DockerPersistenceTests {
    private func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "berth-liveness-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path + "/servers", withIntermediateDirectories: true)
        return path
    }

    /// The lock another process would hold: a separate open file description.
    private func hold(_ path: String) -> Int32 {
        let fd = open(path, O_RDWR | O_CREAT, 0o600)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0)
        return fd
    }

    @Test func aRecordIsAliveWhileHeldAndDeadOnceReleased() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let path = root + "/servers/other.lock"
        let fd = hold(path)
        #expect(DockerLiveness.owner(recordedAt: path) == .alive)
        close(fd)
        #expect(DockerLiveness.owner(recordedAt: path) == .dead)
    }

    @Test func whatIsNotARecordIsUnknownAndLeftAlone() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(DockerLiveness.owner(recordedAt: nil) == .unknown)
        #expect(DockerLiveness.owner(recordedAt: root + "/servers/missing.lock") == .unknown)
        #expect(DockerLiveness.owner(recordedAt: "relative/x.lock") == .unknown)
        #expect(DockerLiveness.owner(recordedAt: root + "/servers/../servers/x.lock") == .unknown)
        FileManager.default.createFile(atPath: root + "/servers/notes.txt", contents: Data())
        #expect(DockerLiveness.owner(recordedAt: root + "/servers/notes.txt") == .unknown)
        // A symlink is not followed: an owner cannot point the check at another file.
        let target = root + "/servers/target.lock"
        FileManager.default.createFile(atPath: target, contents: Data())
        try FileManager.default.createSymbolicLink(atPath: root + "/servers/link.lock", withDestinationPath: target)
        #expect(DockerLiveness.owner(recordedAt: root + "/servers/link.lock") == .unknown)
    }

    @Test func anIdentityALiveServerHoldsIsRefused() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let fd = hold(root + "/servers/twin.lock")
        defer { close(fd) }
        #expect {
            try DockerLiveness.acquire(root: root, identity: "twin")
        } throws: { error in
            (error as? DockerError)?.code == "SERVER_IDENTITY_IN_USE"
        }
        #expect(DockerLiveness.currentPath == nil)
    }

    @Test func engineTimesAreReadToTheSecond() {
        let expected = Date(timeIntervalSince1970: 1_796_420_320)
        #expect(DockerContainerInfo.parseTime("2026-12-04T21:38:40.123456789Z") == expected)
        #expect(DockerContainerInfo.parseTime("2026-12-04T21:38:40Z") == expected)
        #expect(DockerContainerInfo.parseTime("2026-12-04T22:38:40.5+01:00") == expected)
        for bad in ["", "yesterday", "2026-12-04", "2026-13-04T21:38:40Z", "2026-12-04T21:38:40.12x"] {
            #expect(DockerContainerInfo.parseTime(bad) == nil, "\(bad)")
        }
    }

    @Test func timeParserSurvivesArbitraryInput() {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789-:.TZ+ xé\u{0}")
        for _ in 0..<2000 {
            let text = String((0..<Int.random(in: 0...40, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! })
            _ = DockerContainerInfo.parseTime(text)
        }
    }

    @Test func reaperIntervalFollowsTheShortestLimit() {
        var persistence = PersistenceConfig()
        #expect(DockerPersistentRegistry.interval(persistence) == .seconds(30))
        persistence.idleTimeout = .seconds(4)
        #expect(DockerPersistentRegistry.interval(persistence) == .seconds(1))
        persistence.maxLifetime = .seconds(2)
        #expect(DockerPersistentRegistry.interval(persistence) == .milliseconds(500))
        persistence.idleTimeout = .zero
        persistence.maxLifetime = .zero
        #expect(DockerPersistentRegistry.interval(persistence) == .seconds(30))
    }

    @Test func userObjectsAreNamedLikeKubernetesPods() throws {
        var persistence = PersistenceConfig()
        persistence.volume.namePrefix = "homes"
        let backend = try DockerBackend(config: DockerConfig(), identity: ServerIdentity(name: "test"), persistence: persistence, logger: .init(label: "test"))
        #expect(backend.persistentName(for: "Alice") != backend.persistentName(for: "alice"))
        #expect(backend.persistentName(for: "alice").hasPrefix("berth-alice-"))
        #expect(backend.volumeName(for: "alice").hasPrefix("homes-alice-"))
        #expect(backend.volumeTarget(for: "Alice") == "/home/alice")
        persistence.volume.mountPath = "/data"
        #expect(
            try DockerBackend(config: DockerConfig(), identity: ServerIdentity(name: "test"), persistence: persistence, logger: .init(label: "test")).volumeTarget(for: "alice")
                == "/data")
    }
}
