import BerthTestSupport
import Testing
@testable import BerthAgentLink

@Suite struct XAuthorityEntryTests {
    private let cookie: [UInt8] = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF]

    /// Known answer: what `xauth -f F add :10 MIT-MAGIC-COOKIE-1 00112233445566778899aabbccddeeff`
    /// writes on a host named `vm` (`0100 0002 766d 0002 3130 0012 MIT-MAGIC-COOKIE-1 0010 cookie`),
    /// with FamilyLocal and its host name replaced by FamilyWild (0xffff) and an empty address.
    @Test func encodesAsXauthWritesIt() {
        let entry = XAuthorityEntry(display: "10", protocolName: "MIT-MAGIC-COOKIE-1", cookie: cookie)
        let expected: [UInt8] = [0xFF, 0xFF, 0x00, 0x00, 0x00, 0x02] + Array("10".utf8) + [0x00, 0x12] + Array("MIT-MAGIC-COOKIE-1".utf8) + [0x00, 0x10] + cookie
        #expect(entry.encoded == expected)
        #expect(entry.printfFormat.hasPrefix("\\377\\377\\000\\000\\000\\002\\061\\060"))
        #expect(entry.printfFormat.count == expected.count * 4)
    }

    @Test func cookiesAreHexAndProtocolNamesArePlain() {
        #expect(XAuthorityEntry.cookieBytes("00112233445566778899AABBccddeeff") == cookie)
        for bad in ["", "0", "0g", "00 11", String(repeating: "ab", count: 257)] {
            #expect(XAuthorityEntry.cookieBytes(bad) == nil)
        }
        #expect(XAuthorityEntry.isProtocolName("MIT-MAGIC-COOKIE-1") && XAuthorityEntry.isProtocolName("XDM-AUTHORIZATION-1"))
        for bad in ["", "a b", "$(id)", "a;b", "x\n", String(repeating: "a", count: 65)] {
            #expect(!XAuthorityEntry.isProtocolName(bad))
        }
    }

    /// Whatever a client sends as cookie or protocol name, the checks answer and never crash.
    @Test func randomCookiesAndNamesNeverCrash() {
        var generator = SeededGenerator(seed: 0x11)
        for _ in 0..<20_000 {
            let length = Int(generator.next() % 40)
            let bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let text = String(decoding: bytes, as: UTF8.self)
            if let decoded = XAuthorityEntry.cookieBytes(text) { #expect(decoded.count * 2 == text.utf8.count) }
            _ = XAuthorityEntry.isProtocolName(text)
        }
    }
}
