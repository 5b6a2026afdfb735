import BerthConfig
import BerthCore
import BerthTestSupport
import NIOCore
import Testing

@testable import BerthConsole

@Suite struct FormDecodingTests {
    @Test func decodesBrowserForms() {
        let form = FormDecoding.decode("csrf=ab12&reason=lab+is+over%21&channel=&x=%E2%9C%93&csrf=second")
        #expect(form["csrf"] == "ab12", "the first value wins")
        #expect(form["reason"] == "lab is over!")
        #expect(form["channel"] == "")
        #expect(form["x"] == "✓")
    }

    @Test func badEscapesAreDropped() {
        #expect(FormDecoding.decode("a=%ZZ&b=%E2%9C&c=1") == ["c": "1"])
    }

    @Test func fuzzNeverCrashes() {
        var rng = SeededGenerator(seed: 22)
        let alphabet = Array("a=&%+0F9Z\u{0}\u{7f}é✓ ".unicodeScalars)
        for _ in 0..<20_000 {
            let text = String(String.UnicodeScalarView((0..<Int.random(in: 0..<40, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
            _ = FormDecoding.decode(text)
        }
    }
}

@Suite struct RecordingNameTests {
    let id = "0123456789abcdef0123456789abcdef"

    @Test func onlyTheShapesBerthWrites() {
        #expect(RecordingStore.parse(id)! == (id, nil))
        #expect(RecordingStore.parse("\(id)-3.cast")! == (id, 3))
        for bad in ["../\(id)", "\(id)/x", "\(id.uppercased())", "\(id)-x.cast", "\(id).cast", "\(id)-1.cast/..", "", ".", "..", "\(id)-.cast", "\(id)0"] {
            #expect(RecordingStore.parse(bad) == nil, "accepted \(bad)")
        }
    }

    @Test func fuzzNeverAcceptsAPath() {
        var rng = SeededGenerator(seed: 2022)
        let alphabet = Array("0123456789abcdef-./castAZ\u{0}".unicodeScalars)
        for _ in 0..<50_000 {
            let text = String(String.UnicodeScalarView((0..<Int.random(in: 0..<44, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! }))
            if RecordingStore.parse(text) != nil { #expect(!text.contains("/") && !text.hasPrefix(".")) }
        }
    }
}

@Suite struct OperatorSignInTests {
    // `openssl passwd -6 -salt consoleSALT s3cret`: a hash made by another implementation.
    let hash = "$6$consoleSALT$5h/ZbvTk53leKPYZUZlP/L9B/89RAX945hm3Zq5lL2xqNOu9ImzEn01QDloBnSM2zCyS86LdsqP1NhpqPG0yA0"

    @Test func rightPasswordSignsInWithFreshTokens() async {
        let signIn = OperatorSignIn(operators: [ConsoleOperator(username: "ada", passwordHash: hash, role: .admin)])
        guard case .signedIn(let session) = await signIn.signIn(username: "ada", password: "s3cret", from: "10.0.0.1") else {
            Issue.record("not signed in")
            return
        }
        #expect(session.role == .admin && session.token.count == 64 && session.csrf.count == 64 && session.token != session.csrf)
        #expect(signIn.session(token: session.token)?.username == "ada")
        #expect(signIn.session(token: session.csrf) == nil)
        signIn.signOut(token: session.token)
        #expect(signIn.session(token: session.token) == nil)
    }

    @Test func failuresAreLimitedPerAddress() async {
        let signIn = OperatorSignIn(operators: [ConsoleOperator(username: "ada", passwordHash: hash, role: .readonly)])
        for _ in 0..<OperatorSignIn.maxFailures {
            guard case .refused = await signIn.signIn(username: "ada", password: "wrong", from: "10.0.0.1") else {
                Issue.record("a wrong password was not refused")
                return
            }
        }
        guard case .rateLimited = await signIn.signIn(username: "ada", password: "s3cret", from: "10.0.0.1") else {
            Issue.record("the address was not limited")
            return
        }
        guard case .signedIn = await signIn.signIn(username: "ada", password: "s3cret", from: "10.0.0.2") else {
            Issue.record("another address was limited too")
            return
        }
        guard case .refused = await signIn.signIn(username: "nobody", password: "s3cret", from: "10.0.0.3") else {
            Issue.record("an unknown operator signed in")
            return
        }
    }

    @Test func tokenComparison() {
        #expect(OperatorSignIn.same("abc", "abc"))
        #expect(!OperatorSignIn.same("abc", "abd") && !OperatorSignIn.same("abc", "abcd") && !OperatorSignIn.same("", ""))
    }
}

@Suite struct LiveSessionBufferTests {
    struct Channel: SessionChannel {
        var channelID: UInt64 { 0 }
        var connection: ConnectionMetadata { ConnectionMetadata(connectionID: ConnectionID(), remoteAddress: RemoteAddress(ip: "127.0.0.1", port: 1)) }
        var stdin: SessionInput { SessionInput { nil } }
        func writeStdout(_ data: ByteBuffer) async throws {}
        func writeStderr(_ data: ByteBuffer) async throws {}
        func sendExitStatus(_ status: UInt32) async {}
        func sendExitSignal(name: String, coreDumped: Bool, message: String) async {}
        func closeWrite() async {}
        func close() async {}
    }

    @Test func keepsTheMostRecentOutput() {
        let session = LiveSession(channel: Channel(), limit: 8) {}
        session.output(ByteBuffer(string: "abcdefgh"))
        session.output(ByteBuffer(string: "ijklmnopq"))
        guard let (watcher, kept, truncated) = session.watch(pendingLimit: 100) else {
            Issue.record("no watcher")
            return
        }
        #expect(String(decoding: kept, as: UTF8.self) == "jklmnopq" && truncated)
        session.output(ByteBuffer(string: "rs"))
        guard case .bytes(let next) = watcher.take() else {
            Issue.record("skipped")
            return
        }
        #expect(String(decoding: next, as: UTF8.self) == "rs")
        #expect(session.summary.bytesOut == 19 && session.summary.watchers == 1)
    }

    @Test func aSlowWatcherIsSkippedNeverWaitedFor() {
        let session = LiveSession(channel: Channel(), limit: 16) {}
        guard let (watcher, _, _) = session.watch(pendingLimit: 10) else {
            Issue.record("no watcher")
            return
        }
        // Nobody reads the watcher; output keeps flowing without waiting.
        for index in 0..<1000 { session.output(ByteBuffer(string: "line \(index)\n")) }
        guard case .skipped = watcher.take() else {
            Issue.record("the watcher was not skipped")
            return
        }
        let again = String(decoding: session.resync(watcher, tail: 12), as: UTF8.self)
        #expect(again.hasSuffix("line 999\n") && again.utf8.count == 12)
        session.output(ByteBuffer(string: "x"))
        guard case .bytes(let next) = watcher.take() else {
            Issue.record("still skipped after resync")
            return
        }
        #expect(next == Array("x".utf8))
    }

    @Test func endedSessionsTakeNoWatcher() {
        let session = LiveSession(channel: Channel(), limit: 16) {}
        session.ended()
        #expect(session.watch(pendingLimit: 10) == nil)
    }
}

@Suite struct OutputRingTests {
    /// Random appends against the obvious model: keep everything, show the last `capacity` bytes.
    @Test func matchesTheModel() {
        var rng = SeededGenerator(seed: 1022)
        for capacity in [1, 2, 7, 64, 1000] {
            var ring = OutputRing(capacity: capacity)
            var model: [UInt8] = []
            for _ in 0..<400 {
                let chunk = rng.bytes(Int.random(in: 0...(capacity * 3), using: &rng))
                chunk.withUnsafeBytes { ring.append($0) }
                model += chunk
                #expect(ring.suffix() == Array(model.suffix(capacity)))
                let tail = Int.random(in: 0...(capacity + 2), using: &rng)
                #expect(ring.suffix(tail) == Array(model.suffix(min(tail, capacity))))
                #expect(ring.total == UInt64(model.count) && ring.truncated == (model.count > capacity))
            }
        }
    }
}

@Suite struct ConsoleReasonTests {
    @Test func oneShortPrintableLine() {
        #expect(ConsoleRoutes.cleanReason("  lab\r\n is \u{1b}[31mover ") == "lab is [31mover")
        #expect(ConsoleRoutes.cleanReason("\u{7}") == "no reason given")
        #expect(ConsoleRoutes.cleanReason(String(repeating: "x", count: 500)).count == 200)
    }
}

@Suite struct OperatorOIDCMappingTests {
    let hash = "$6$consoleSALT$5h/ZbvTk53leKPYZUZlP/L9B/89RAX945hm3Zq5lL2xqNOu9ImzEn01QDloBnSM2zCyS86LdsqP1NhpqPG0yA0"

    @Test func onlyOperatorsWithoutAPasswordMatchAnOIDCName() async {
        let signIn = OperatorSignIn(operators: [
            ConsoleOperator(username: "ada", passwordHash: hash, role: .admin), ConsoleOperator(username: "tutor", passwordHash: "", role: .readonly),
        ])
        #expect(signIn.oidcOperator("tutor")?.role == .readonly)
        #expect(signIn.oidcOperator("ada") == nil, "a provider's user name took over a password operator")
        #expect(signIn.oidcOperator("nobody") == nil)
        // And an OIDC operator has no password that could sign in, the empty one included.
        for password in ["", "s3cret"] {
            guard case .refused = await signIn.signIn(username: "tutor", password: password, from: "10.0.0.9") else {
                Issue.record("an OIDC-only operator signed in with the password \"\(password)\"")
                return
            }
        }
        let session = signIn.newSession(signIn.oidcOperator("tutor")!)
        #expect(signIn.session(token: session.token)?.username == "tutor")
        #expect(signIn.session(token: session.token)?.role == .readonly)
    }
}
