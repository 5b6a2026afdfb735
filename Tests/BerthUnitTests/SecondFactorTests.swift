import BerthConfig
import BerthCore
import BerthTestSupport
import Foundation
import Logging
import Testing
@testable import BerthAuth

@Suite struct SecondFactorTests {
    /// RFC 6238 Appendix B: the seeds are the ASCII digits repeated to the hash's size.
    @Test func rfc6238AppendixB() {
        let seed = Array("1234567890".utf8)
        let vectors: [(Int64, String, String, String)] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ]
        let sha1 = TOTP(secret: Array((seed + seed).prefix(20)), digits: 8, period: 30, algorithm: .sha1)
        let sha256 = TOTP(secret: Array((seed + seed + seed + seed).prefix(32)), digits: 8, period: 30, algorithm: .sha256)
        let sha512 = TOTP(secret: Array(Array(repeating: seed, count: 7).joined().prefix(64)), digits: 8, period: 30, algorithm: .sha512)
        for (time, one, two, five) in vectors {
            #expect(sha1.code(step: sha1.step(at: time)) == one, "SHA1 at \(time)")
            #expect(sha256.code(step: sha256.step(at: time)) == two, "SHA256 at \(time)")
            #expect(sha512.code(step: sha512.step(at: time)) == five, "SHA512 at \(time)")
        }
        // Six digits are the last six of the same value (RFC 4226 §5.3).
        #expect(TOTP(secret: sha1.secret, digits: 6, period: 30, algorithm: .sha1).code(step: 1) == "287082")
    }

    @Test func skewAndNoMatch() {
        let totp = TOTP(secret: Array("12345678901234567890".utf8), digits: 8, period: 30, algorithm: .sha1)
        #expect(totp.matchingStep("07081804", at: 1_111_111_109, skew: 0) == 37_037_036)
        #expect(totp.matchingStep("0708 1804", at: 1_111_111_109 + 30, skew: 1) == 37_037_036)
        #expect(totp.matchingStep("07081804", at: 1_111_111_109 + 60, skew: 1) == nil)
        #expect(totp.matchingStep("0708180", at: 1_111_111_109, skew: 1) == nil)
        #expect(totp.matchingStep("070818045", at: 1_111_111_109, skew: 1) == nil)
        #expect(totp.matchingStep("", at: 1_111_111_109, skew: 1) == nil)
    }

    /// RFC 4648 §10 test vectors.
    @Test func base32KnownAnswers() {
        let vectors = [
            ("", ""), ("f", "MY======"), ("fo", "MZXQ===="), ("foo", "MZXW6==="), ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"), ("foobar", "MZXW6YTBOI======"),
        ]
        for (plain, encoded) in vectors {
            #expect(Base32.encode(Array(plain.utf8)) == encoded)
            #expect(Base32.decode(encoded) == Array(plain.utf8))
            #expect(Base32.decode(encoded.replacingOccurrences(of: "=", with: "").lowercased()) == Array(plain.utf8))
        }
        #expect(Base32.decode("MZXW 6YTB-OI") == Array("foobar".utf8))
        for bad in ["M", "MZX", "MZXW6Y", "MZ1Q", "MZ=Q", "MZXQ==", "MZ======X", "MZ"] {
            #expect(Base32.decode(bad) == nil, "\(bad)")
        }
    }

    @Test func base32FuzzRoundTripsAndNeverTraps() {
        var generator = SeededGenerator(seed: 0x7070_0016)
        for _ in 0..<5_000 {
            let bytes = generator.bytes(Int.random(in: 0...40, using: &generator))
            #expect(Base32.decode(Base32.encode(bytes)) == bytes)
            let noise = String(decoding: generator.bytes(Int.random(in: 0...40, using: &generator)), as: UTF8.self)
            _ = Base32.decode(noise)
        }
    }

    private func metadata(_ user: String, webhook: [String: String] = [:]) -> ConnectionMetadata {
        ConnectionMetadata(
            connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!, remoteAddress: RemoteAddress(ip: "192.0.2.1", port: 1),
            username: user, metadata: webhook.mapValues { MetadataValue(value: $0) })
    }

    @Test func whoIsAskedAndTheSecretLeavesTheMetadata() {
        var config = SecondFactorConfig()
        config.method = .totp
        let secret = "JBSWY3DPEHPK3PXPJBSWY3DP"
        let gate = SecondFactorGate(config: config, users: [StaticUser(username: "alice", totpSecret: secret)], store: memory)
        guard case .ask(_, let aliceSecret) = gate.decide(metadata("alice")) else { Issue.record("alice not asked"); return }
        #expect(aliceSecret == Base32.decode(secret))
        guard case .done = gate.decide(metadata("bob")) else { Issue.record("bob asked"); return }
        guard case .ask(let cleaned, _) = gate.decide(metadata("carol", webhook: ["totpSecret": secret, "team": "x"])) else { Issue.record("carol not asked"); return }
        #expect(cleaned.metadata["totpSecret"] == nil && cleaned.metadata["team"]?.value == "x")
        guard case .refuse = gate.decide(metadata("dave", webhook: ["totpSecret": "not base32!"])) else { Issue.record("bad secret used"); return }
        config.required = true
        guard case .refuse = SecondFactorGate(config: config, users: [], store: memory).decide(metadata("bob")) else { Issue.record("required not enforced"); return }
    }

    @Test func aCodeIsAcceptedOnce() {
        var config = SecondFactorConfig()
        config.method = .totp
        let gate = SecondFactorGate(config: config, users: [], store: memory)
        let secret = Array("12345678901234567890".utf8)
        let now = Date(timeIntervalSince1970: 1_111_111_109)
        let code = TOTP(secret: secret, digits: 6, period: 30, algorithm: .sha1).code(step: 37_037_036)
        #expect(gate.verify(code, secret: secret, user: "alice", now: now))
        #expect(!gate.verify(code, secret: secret, user: "alice", now: now))
        // The previous step's code is older than the one used: also a replay.
        let earlier = TOTP(secret: secret, digits: 6, period: 30, algorithm: .sha1).code(step: 37_037_035)
        #expect(!gate.verify(earlier, secret: secret, user: "alice", now: now))
        #expect(gate.verify(code, secret: secret, user: "bob", now: now))
        #expect(!gate.verify("000000", secret: secret, user: "carol", now: now) || code == "000000")
    }

    private var memory: AuthStateStore { AuthStateStore(directory: nil, logger: Logger(label: "test")) }

    @Test func spentCodesAndKeyCountersOutliveARestart() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("auth-state-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var config = SecondFactorConfig()
        config.method = .totp
        let secret = Array("12345678901234567890".utf8)
        let now = Date(timeIntervalSince1970: 1_111_111_109)
        let code = TOTP(secret: secret, digits: 6, period: 30, algorithm: .sha1).code(step: 37_037_036)
        let first = AuthStateStore(directory: directory, logger: Logger(label: "test"))
        #expect(SecondFactorGate(config: config, users: [], store: first).verify(code, secret: secret, user: "alice", now: now))
        #expect(SecurityKeyCounters(store: first).accept("sk-key", counter: 7))
        let path = directory + "/" + AuthStateStore.fileName
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // A new server process: the code and the counter are still spent.
        let second = AuthStateStore(directory: directory, logger: Logger(label: "test"))
        #expect(!SecondFactorGate(config: config, users: [], store: second).verify(code, secret: secret, user: "alice", now: now))
        #expect(!SecurityKeyCounters(store: second).accept("sk-key", counter: 7))
        #expect(SecurityKeyCounters(store: second).accept("sk-key", counter: 8))
        // A damaged file: the server starts without it and replaces it on the next change.
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: path))
        let third = AuthStateStore(directory: directory, logger: Logger(label: "test"))
        #expect(SecurityKeyCounters(store: third).accept("sk-key", counter: 1))
        #expect(!SecurityKeyCounters(store: AuthStateStore(directory: directory, logger: Logger(label: "test"))).accept("sk-key", counter: 1))
    }

    @Test func anUnwritableDirectoryStillRefusesReplaysInMemory() {
        let store = AuthStateStore(directory: "/proc/berth-cannot-write-here", logger: Logger(label: "test"))
        let counters = SecurityKeyCounters(store: store)
        #expect(counters.accept("k", counter: 3))
        #expect(!counters.accept("k", counter: 3))
    }
}
