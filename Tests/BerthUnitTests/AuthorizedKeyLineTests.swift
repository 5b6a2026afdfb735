import BerthConfig
import BerthCore
import BerthSecurity
import BerthTestSupport
import Foundation
import Logging
import Testing
@testable import BerthAuth

/// authorized_keys lines as sshd(8) "AUTHORIZED_KEYS FILE FORMAT" defines them; the example file
/// of that page is the known-answer set (with "..." replaced by real keys).
@Suite struct AuthorizedKeyLineTests {
    static let ed25519 = "AAAAC3NzaC1lZDI1NTE5AAAAIGnbutSmupPbX2M1tB6t8AhodZiH8Yuu3lHSp+S7kysk"
    static let rsa =
        "AAAAB3NzaC1yc2EAAAADAQABAAAAgQC+YdClvjNb2mQF8mtnXW3Uwg9eBK5lRSEfZXPp31NLodtevY8V2ASn44643ZOGv3PsIrU19bDC8QWkYQOfcG30URxlal3ryklfjuOBcIPczfE1vrpoCaYClLwY+u4Jbg4tzkHLEOCNwI1q1VoPS6B2d/Jd08jLuFT+HaZRaFrkWQ=="

    private func parse(_ line: String) throws -> AuthorizedKeyLine {
        try #require(try AuthorizedKeyLine.parse(line))
    }

    private func refusal(_ line: String) -> String? {
        do throws(AuthorizedKeyLine.Refusal) {
            _ = try AuthorizedKeyLine.parse(line)
            return nil
        } catch {
            return error.reason
        }
    }

    @Test func sshdManualExampleFile() throws {
        let rsa = Self.rsa
        #expect(try AuthorizedKeyLine.parse("# Comments are allowed at start of line. Blank lines are allowed.") == nil)
        #expect(try AuthorizedKeyLine.parse("") == nil)
        #expect(try AuthorizedKeyLine.parse("   ") == nil)

        let plain = try parse("ssh-rsa \(rsa)")
        #expect(plain.keyType == "ssh-rsa" && plain.keyBlob == rsa && plain.options == AuthorizedKeyOptions())
        #expect(plain.options.restrictions.isUnrestricted)

        let dump = try parse(#"restrict,command="dump /home" ssh-rsa \#(rsa)"#).options.restrictions
        #expect(dump.forceCommand == "dump /home")
        #expect(!dump.pty && !dump.portForwarding && !dump.agentForwarding && !dump.x11Forwarding)

        let open = try parse(#"permitopen="192.0.2.1:80",permitopen="192.0.2.2:25" ssh-rsa \#(rsa)"#).options.restrictions
        #expect(open.permitOpen == [ForwardPermission(host: "192.0.2.1", port: 80), ForwardPermission(host: "192.0.2.2", port: 25)])
        #expect(open.allowsOpen(host: "192.0.2.1", port: 80) && open.allowsOpen(host: "192.0.2.2", port: 25))
        #expect(!open.allowsOpen(host: "192.0.2.1", port: 25) && !open.allowsOpen(host: "192.0.2.3", port: 80))

        let listen = try parse(#"permitlisten="localhost:8080",permitlisten="[::1]:22000" ssh-rsa \#(rsa)"#).options.restrictions
        #expect(listen.permitListen == [ForwardPermission(host: "localhost", port: 8080), ForwardPermission(host: "::1", port: 22000)])
        #expect(listen.allowsListen(host: "localhost", port: 8080) && listen.allowsListen(host: "::1", port: 22000))
        #expect(!listen.allowsListen(host: "", port: 8080) && !listen.allowsListen(host: "localhost", port: 22000))

        // Berth has no tun forwarding, so a line that configures it is refused, not half-applied.
        #expect(refusal(#"tunnel="0",command="sh /etc/netstart tun0" ssh-rsa \#(rsa)"#)?.contains("tunnel") == true)

        let nethack = try parse(#"restrict,pty,command="nethack" ssh-rsa \#(rsa)"#).options.restrictions
        #expect(nethack.pty && !nethack.portForwarding && nethack.forceCommand == "nethack")

        let ca = try parse(#"cert-authority,no-touch-required,principals="user_a" ssh-rsa \#(rsa)"#).options
        #expect(ca.certAuthority && !ca.touchRequired && ca.principals == ["user_a"])
    }

    @Test func eachOptionOfTheManual() throws {
        let key = "ssh-ed25519 \(Self.ed25519) me@laptop"
        let options = try parse(
            #"from="10.0.0.0/8,!10.1.*,192.168.1.?",no-agent-forwarding,no-X11-forwarding,no-port-forwarding,no-pty,no-user-rc,environment="A=b c",environment="A=second",environment="DEPLOY=1",expiry-time="20300101Z" \#(key)"#
        ).options
        #expect(options.allowsSource(ip: "10.2.3.4"))
        #expect(!options.allowsSource(ip: "10.1.0.1"))
        #expect(options.allowsSource(ip: "192.168.1.7") && !options.allowsSource(ip: "192.168.1.70"))
        #expect(!options.allowsSource(ip: "172.16.0.1"))
        #expect(options.environment == ["A": "b c", "DEPLOY": "1"])
        let r = options.restrictions
        #expect(!r.agentForwarding && !r.x11Forwarding && !r.portForwarding && !r.pty && r.forceCommand == nil)
        let expiry = try #require(options.expiry)
        #expect(expiry == Date(timeIntervalSince1970: 1_893_456_000))
        #expect(!options.isExpired(at: Date(timeIntervalSince1970: 1_893_455_999)) && options.isExpired(at: expiry))
        // Option names are case-insensitive; \" inside a value is a quote.
        let quoted = try parse(#"COMMAND="echo \"hi\", there" \#(key)"#).options.restrictions
        #expect(quoted.forceCommand == #"echo "hi", there"#)
        #expect(try parse(#"expiry-time="203001011230",expiry-time="202901011230UTC" \#(key)"#).options.expiry == Date(timeIntervalSince1970: 1_861_965_000))
        #expect(
            try parse(#"permitlisten="9000",permitopen="*:22" \#(key)"#).options.restrictions
                == {
                    var expected = LoginRestrictions()
                    expected.permitListen = [ForwardPermission(host: "*", port: 9000)]
                    expected.permitOpen = [ForwardPermission(host: "*", port: 22)]
                    return expected
                }())
        #expect(try parse(#"from="::1,2001:db8::/32" \#(key)"#).options.allowsSource(ip: "2001:db8::5"))
    }

    @Test func refusedLinesSayWhy() {
        let key = "ssh-ed25519 \(Self.ed25519)"
        let cases: [(String, String)] = [
            ("no-such-option \(key)", "unknown option \"no-such-option\""),
            (#"nope="x" \#(key)"#, "unknown option \"nope=\""),
            ("no-restrict \(key)", "unknown option \"no-restrict\""),
            (#"command="a",command="b" \#(key)"#, "command= given twice"),
            (#"command=unquoted \#(key)"#, "must be in double quotes"),
            (#"command="open \#(key)"#, "no closing quote"),
            ("no-pty, \(key)", "options end with a comma"),
            ("no-pty,,pty \(key)", "empty option"),
            (#"from="10.0.0.0/33" \#(key)"#, "not an address block"),
            (#"from="" \#(key)"#, "empty pattern"),
            (#"expiry-time="2030" \#(key)"#, "expiry-time"),
            (#"expiry-time="20301301" \#(key)"#, "expiry-time"),
            (#"expiry-time="20300230" \#(key)"#, "expiry-time"),
            (#"environment="NOEQUALS" \#(key)"#, "no NAME="),
            (#"environment="1X=y" \#(key)"#, "is not [A-Za-z_]"),
            (#"permitopen="host" \#(key)"#, "is not host:port"),
            (#"permitopen="host:0" \#(key)"#, "no valid port"),
            (#"permitopen="host:65536" \#(key)"#, "no valid port"),
            (#"permitopen="::1:22" \#(key)"#, "brackets"),
            (#"permitlisten=":22" \#(key)"#, "has no host"),
            (#"principals="a,,b" \#(key)"#, "empty name"),
            ("no-pty", "no key after the options"),
            ("no-pty ssh-foo AAAA", "unknown key type"),
            ("ssh-ed25519", "no key data"),
            ("no-pty ssh-ed25519", "no key data"),
            ("ssh-ed25519 \(Self.rsa)", "not a base64 ssh-ed25519 key"),
            ("ssh-ed25519 !!!notbase64", "not a base64"),
        ]
        for (line, reason) in cases {
            let got = refusal(line)
            #expect(got?.contains(reason) == true, "\(line) → \(got ?? "accepted")")
        }
    }

    @Test func restrictionsNarrowTheSecurityPolicy() {
        var restrictions = LoginRestrictions()
        restrictions.forceCommand = "backup"
        restrictions.pty = false
        restrictions.permitOpen = [ForwardPermission(host: "db", port: 5432)]
        restrictions.permitListen = [ForwardPermission(host: "localhost", port: nil)]
        let policy = SecurityPolicy(SecurityConfig(), restrictions: restrictions)
        #expect(policy.forceCommand == "backup")
        #expect(policy.keyRefusesOpen(host: "db", port: 5432) == nil)
        #expect(policy.keyRefusesOpen(host: "DB", port: 5432) == nil)
        #expect(policy.keyRefusesOpen(host: "db", port: 5433)?.contains("permitopen") == true)
        #expect(policy.keyRefusesListen(host: "localhost", port: 1234) == nil)
        #expect(policy.keyRefusesListen(host: "0.0.0.0", port: 1234)?.contains("permitlisten") == true)
        var config = SecurityConfig()
        config.forceCommand = "operator-wins"
        #expect(SecurityPolicy(config, restrictions: restrictions).forceCommand == "operator-wins")
        restrictions.portForwarding = false
        #expect(SecurityPolicy(SecurityConfig(), restrictions: restrictions).keyRefusesOpen(host: "db", port: 5432)?.contains("no-port-forwarding") == true)
    }

    private let metadata = ConnectionMetadata(
        connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!,
        remoteAddress: RemoteAddress(ip: "192.0.2.7", port: 5022), username: "deploy"
    )

    @Test func firstAdmittingLineWinsAndRefusalsAreExplained() throws {
        let offered = try #require(AuthorizedKeys.key(offered: "ssh-ed25519 \(Self.ed25519)"))
        func authorize(_ lines: [String], at now: Date = Date(timeIntervalSince1970: 1_800_000_000)) -> AuthOutcome {
            AuthorizedKeys.authorize(
                offered, lines: lines.enumerated().map { AuthorizedKeys.Source(location: "f:\($0.offset + 1)", text: $0.element) },
                metadata: metadata, now: now, logger: nil)
        }
        let key = "ssh-ed25519 \(Self.ed25519)"
        guard case .failure(let reason) = authorize(["cert-authority \(key)"]) else { Issue.record("CA line admitted a login"); return }
        #expect(reason.contains("cert-authority"))
        guard case .failure(let expired) = authorize([#"expiry-time="20260101Z" \#(key)"#]) else { Issue.record("expired key admitted"); return }
        #expect(expired.contains("expiry-time"))
        guard case .failure(let from) = authorize([#"from="10.0.0.0/8" \#(key)"#]) else { Issue.record("from= ignored"); return }
        #expect(from.contains("192.0.2.7"))
        guard case .failure(let unknown) = authorize(["frobnicate \(key)"]) else { Issue.record("unknown option ignored"); return }
        #expect(unknown.contains("unknown option"))
        guard case .failure = authorize(["ssh-rsa \(Self.rsa)"]) else { Issue.record("other key admitted"); return }
        // A refused line does not hide a later one that admits the key.
        guard case .success(let admitted) = authorize([#"from="10.0.0.0/8" \#(key)"#, #"command="only",environment="X=1" \#(key)"#]) else {
            Issue.record("second line not used"); return
        }
        #expect(admitted.restrictions.forceCommand == "only")
        #expect(admitted.environment["X"]?.value == "1")
        #expect(admitted.effectiveUsername == "deploy")
    }

    /// Random bytes, random option soup and mutations of valid lines: the parser answers (a line
    /// or a refusal) and never traps.
    @Test func fuzzNeverTraps() throws {
        var generator = SeededGenerator(seed: 0x5eed_0016)
        let key = "ssh-ed25519 \(Self.ed25519)"
        let pieces = [
            "no-pty", "restrict", "pty", "command=", "\"", "\\", "\\\"", ",", " ", "\t", "from=", "permitopen=", "permitlisten=",
            "[", "]", ":", "*", "expiry-time=", "environment=", "=", "cert-authority", "principals=", "!", "/", "ssh-ed25519", key, "é", "\u{0}",
        ]
        let seeds = [#"restrict,command="a \"b\"",from="10.0.0.0/8",permitopen="[::1]:22" \#(key) c"#, #"environment="A=1",expiry-time="20300101Z" \#(key)"#]
        var parsed = 0
        for round in 0..<20_000 {
            let line: String
            switch round % 3 {
            case 0: line = String(decoding: generator.bytes(Int.random(in: 0...80, using: &generator)), as: UTF8.self)
            case 1: line = (0..<Int.random(in: 1...12, using: &generator)).map { _ in pieces.randomElement(using: &generator)! }.joined()
            default:
                var scalars = Array(seeds.randomElement(using: &generator)!.unicodeScalars)
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    let at = Int.random(in: 0..<scalars.count, using: &generator)
                    if Bool.random(using: &generator) { scalars.remove(at: at) } else { scalars.insert(Unicode.Scalar(UInt8.random(in: 32...126, using: &generator)), at: at) }
                }
                line = String(String.UnicodeScalarView(scalars))
            }
            if (try? AuthorizedKeyLine.parse(line)) != nil { parsed += 1 }
        }
        #expect(parsed > 0)
    }
}
