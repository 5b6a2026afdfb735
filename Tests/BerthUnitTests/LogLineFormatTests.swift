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
}
