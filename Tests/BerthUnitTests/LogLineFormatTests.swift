import Logging
import Testing
@testable import BerthObservability

@Suite struct LogLineFormatTests {
    @Test func textLinesCannotBeForgedWithControlCharacters() {
        let typed = "alice\n2030-01-01T00:00:00.000Z\tnotice\tAUTH_OK\tbob logged in\r\u{1b}[2K\u{85}\u{2028}"
        let line = LogLineFormat.text(
            level: "info", code: "AUTH_FAILED", message: "login of \(typed) failed",
            details: ["username": .string(typed), "bad\nkey": "v"])
        #expect(!line.contains { $0.isNewline })
        #expect(line.unicodeScalars.allSatisfy { $0.value >= 0x20 && !(0x7F...0x9F).contains($0.value) || $0 == "\t" })
        // Exactly the three separators of the format stay tabs.
        #expect(line.filter { $0 == "\t" }.count == 3)
        #expect(line.contains(#"alice\n2030-01-01T00:00:00.000Z\tnotice\tAUTH_OK\tbob logged in\r\x1b[2K\x85\u2028"#))
        #expect(line.contains(#"bad\nkey=v"#))
    }

    @Test func backslashesAreEscapedSoEscapesReadBackUnambiguously() {
        #expect(LogLineFormat.escaped(#"a\nb"#) == #"a\\nb"#)
        #expect(LogLineFormat.escaped("a\nb") == #"a\nb"#)
        #expect(LogLineFormat.escaped("plain Zoë 名前") == "plain Zoë 名前")
    }

    @Test func jsonLinesEscapeControlCharactersToo() {
        let line = LogLineFormat.json(level: "info", code: "X_Y", message: "a\nb", details: ["username": "c\rd"])
        #expect(!line.contains { $0.isNewline })
    }

    /// ljson lines are read by jq and log shippers: key order (sorted, also inside `details`),
    /// escaping and the shape stay byte for byte what they were.
    @Test func jsonLineBytesArePinned() {
        let awkward = "q\"b\\s/n\nr\rt\tb\u{8}f\u{c}c\u{1}\u{1f}d\u{7f}e\u{85}\u{2028}é😀\u{0}"
        let details: Logger.Metadata = [
            "username": .string(awkward), "connectionId": "0123456789abcdef0123456789abcdef", "remoteAddress": "192.0.2.1:50022",
            "A_B": "1", "AB": "2", "a10": "3", "a2": "4", "keyType": "5", "keyboard": "6", "userName": "7", "_x": "8", "é": "9", "Zeta": "10",
            "count": .stringConvertible(42), "list": .array(["b", .dictionary(["z": "1", "Y": "2"])]), "map": .dictionary(["b": "1", "a": .array([])]),
        ]
        #expect(
            LogLineFormat.json(level: nil, code: "X_Y", message: "m/\(awkward)", details: details)
                == #"{"code":"X_Y","connectionId":"0123456789abcdef0123456789abcdef","details":{"_x":"8","A_B":"1","a2":"4","a10":"3","AB":"2","count":"42","é":"9","keyboard":"6","keyType":"5","list":["b",{"Y":"2","z":"1"}],"map":{"a":[],"b":"1"},"userName":"7","Zeta":"10"},"message":"m/q\"b\\s/n\nr\rt\tb\bf\fc\u0001\u001fd\#u{7f}e\#u{85}\#u{2028}é😀\u0000","remoteAddress":"192.0.2.1:50022","username":"q\"b\\s/n\nr\rt\tb\bf\fc\u0001\u001fd\#u{7f}e\#u{85}\#u{2028}é😀\u0000"}"#
        )
        #expect(LogLineFormat.json(level: nil, code: "C", message: "", details: [:]) == #"{"code":"C","message":""}"#)
        let line = LogLineFormat.json(level: "notice", code: "C", message: "m", details: ["username": "u"])
        #expect(line.hasPrefix(#"{"code":"C","level":"notice","message":"m","timestamp":""#))
        #expect(line.hasSuffix(#"Z","username":"u"}"#))
    }
}
