import BerthCBOR
import Testing
@testable import BerthAudit

/// Pins the exact bytes of `audit decode`'s JSON lines and of asciicast recordings: people and
/// tools (asciinema, jq) read them, so key order, escaping and number text must not drift.
@Suite struct AuditJSONTests {
    private static let awkward = "q\"b\\s/n\nr\rt\tb\u{8}f\u{c}c\u{1}\u{1f}d\u{7f}e\u{85}\u{2028}é😀\u{0}"

    @Test func decodedLinesKeepTheirBytes() {
        let payload = CBORValue.map([
            CBORPair(.text("text"), .text(Self.awkward)),
            CBORPair(.text("data"), .bytes([0, 1, 0xFF, 0x2F])),
            CBORPair(.text("stream"), .unsigned(1)),
            CBORPair(.text("exitStatus"), .int(-3)),
            CBORPair(.text("big"), .unsigned(9_223_372_036_854_775_807)),
            CBORPair(.text("low"), .int(Int64.min)),
            CBORPair(.text("ok"), .bool(true)),
            CBORPair(.text("none"), .null),
            CBORPair(.text("gone"), .undefined),
            CBORPair(.text("half"), .double(2.5)),
            CBORPair(.text("whole"), .double(1.0)),
            CBORPair(.text("tiny"), .double(1e-5)),
            CBORPair(.text("huge"), .double(1e16)),
            CBORPair(.text("tagged"), .tagged(1, .unsigned(7))),
            CBORPair(.unsigned(5), .text("a non-text key is left out")),
            CBORPair(.text("A_B"), .text("x")), CBORPair(.text("AB"), .text("x")), CBORPair(.text("a10"), .text("x")),
            CBORPair(.text("a2"), .text("x")), CBORPair(.text("keyType"), .text("x")), CBORPair(.text("keyboard"), .text("x")),
            CBORPair(.text("list"), .array([.unsigned(1), .text("two"), .map([CBORPair(.text("b"), .null), CBORPair(.text("a"), .bool(false))])])),
        ])
        let message = AuditMessage(connectionID: "0123456789abcdef0123456789abcdef", timestamp: 1_700_000_000_123_456_789, type: .exec, payload: payload, channelID: 4)
        #expect(
            AuditDecoder.jsonLine(message)
                == #"{"channelId":4,"connectionId":"0123456789abcdef0123456789abcdef","payload":{"A_B":"x","a2":"x","a10":"x","AB":"x","big":9223372036854775807,"data":"AAH/Lw==","exitStatus":-3,"gone":null,"half":2.5,"huge":1e+16,"keyboard":"x","keyType":"x","list":[1,"two",{"a":false,"b":null}],"low":0,"none":null,"ok":true,"stream":1,"tagged":7,"text":"q\"b\\s/n\nr\rt\tb\bf\fc\u0001\u001fd\#u{7f}e\#u{85}\#u{2028}é😀\u0000","tiny":1e-05,"whole":1},"timestamp":1700000000123456789,"type":403,"typeName":"exec"}"#
        )
        let bare = AuditMessage(connectionID: "c", timestamp: 0, type: .connect)
        #expect(AuditDecoder.jsonLine(bare) == #"{"channelId":null,"connectionId":"c","payload":null,"timestamp":0,"type":0,"typeName":"connect"}"#)
    }

    @Test func asciicastsKeepTheirBytes() {
        let start: Int64 = 1_700_000_000_000_000_000
        func message(_ type: AuditMessageType, _ at: Int64, _ payload: AuditPayload) -> AuditMessage {
            AuditMessage(connectionID: "c", timestamp: start + at, type: type, payload: payload.value, channelID: 2)
        }
        let messages = [
            message(.newChannelSuccessful, 0, AuditPayload().text("channelType", "session")),
            message(.pty, 0, AuditPayload().text("term", "xterm-256color").int("columns", 132).int("rows", 43)),
            message(.setEnv, 0, AuditPayload().text("name", "LC_ALL").text("value", "C/UTF-8")),
            message(.setEnv, 0, AuditPayload().text("name", "A_B").text("value", "1")),
            message(.setEnv, 0, AuditPayload().text("name", "AB").text("value", "é\u{1}")),
            message(.exec, 0, AuditPayload().text("program", "ls /tmp \"x\"")),
            message(.io, 1_000_000_000, AuditPayload().int("stream", 1).bytes("data", Array("out\r\n\u{1b}[0m/é".utf8) + [0xFF])),
            message(.io, 1_500_000_000, AuditPayload().int("stream", 0).bytes("data", Array("in".utf8))),
            message(.io, 1_000_010, AuditPayload().int("stream", 1).bytes("data", [])),
        ]
        let casts = AuditDecoder.asciicasts(messages)
        #expect(casts.count == 1)
        #expect(casts.first?.channel == 2)
        #expect(
            casts.first?.text == """
                {"command":"ls /tmp \\"x\\"","env":{"A_B":"1","AB":"é\\u0001","LC_ALL":"C/UTF-8","TERM":"xterm-256color"},"height":43,"timestamp":1700000000,"version":2,"width":132}
                [1,"o","out\\r\\n\\u001b[0m/é\u{FFFD}"]
                [1.5,"i","in"]
                [0.00100001,"o",""]

                """)
    }
}
