import BerthCore
import BerthTestSupport
import Foundation
import Testing
@testable import BerthAuth
@testable import BerthConfig

/// The one writer of free-form JSON (`ConfigRenderer.compactJSON`) and the readers of
/// `ConfigValue` (docs/architecture.md, "JSON").
@Suite struct JSONRenderingTests {
    @Test func escapesWhatJSONRequiresAndNothingElse() {
        let text = "q\"b\\s/n\nr\rt\tb\u{8}f\u{c}c\u{1}\u{1f}d\u{7f}e\u{85}\u{2028}é😀\u{0}"
        #expect(ConfigRenderer.compactJSON(.string(text)) == "\"q\\\"b\\\\s/n\\nr\\rt\\tb\\bf\\fc\\u0001\\u001fd\u{7f}e\u{85}\u{2028}é😀\\u0000\"")
        #expect(ConfigRenderer.compactJSON(.object([("b", .array([])), ("a", .object([]))])) == #"{"b":[],"a":{}}"#)
    }

    @Test func numbersKeepTheirText() {
        let values: [ConfigValue] = [.int(.max), .int(.min), .double(1.0), .double(1e-5), .double(0.1), .double(1e16), .null, .bool(false)]
        #expect(ConfigRenderer.compactJSON(.array(values)) == "[9223372036854775807,-9223372036854775808,1.0,1e-05,0.1,1e+16,null,false]")
        #expect(ConfigValue.number(1.0) == .int(1))
        #expect(ConfigValue.number(-3) == .int(-3))
        #expect(ConfigValue.number(2.5) == .double(2.5))
        #expect(ConfigValue.number(9_007_199_254_740_992) == .double(9_007_199_254_740_992))
        #expect(ConfigValue.number(-0.0) == .double(-0.0))
        #expect(ConfigValue.number(.nan) == .null)
        #expect(ConfigValue.number(-.infinity) == .null)
    }

    /// A plain `1e999` reads as infinity; JSON has none, so it is written as null, never `inf`.
    @Test func nonFiniteDoublesAreWrittenAsNull() throws {
        let parsed = try ConfigValue.parse("big: 1e999\nsmall: -1e999", format: .yaml, source: "test")
        #expect(ConfigRenderer.compactJSON(parsed) == #"{"big":null,"small":null}"#)
        #expect(ConfigRenderer.compactJSON(.array([.double(.nan), .double(.infinity)])) == "[null,null]")
    }

    @Test func sortedKeysFollowTheAuditAndLogOrder() {
        let keys = ["keyType", "a10", "Zeta", "é", "AB", "_x", "keyboard", "a2", "A_B", "userName", "username", "1", "10", "9"]
        let rendered = ConfigRenderer.compactJSON(.object(keys.map { ($0, .null) }), sortedKeys: true)
        #expect(
            rendered
                == #"{"_x":null,"1":null,"9":null,"10":null,"A_B":null,"a2":null,"a10":null,"AB":null,"é":null,"keyboard":null,"keyType":null,"username":null,"userName":null,"Zeta":null}"#
        )
    }

    /// The ICU-free path for keys of letters must agree with the collation it stands in for.
    @Test func lettersOnlyOrderAgreesWithTheCollation() {
        var random = SeededGenerator(seed: 21)
        let letters = Array("aAbBkKyYzZ")
        for _ in 0..<20_000 {
            let a = String((0..<Int.random(in: 0...5, using: &random)).map { _ in letters.randomElement(using: &random)! })
            let b = String((0..<Int.random(in: 0...5, using: &random)).map { _ in letters.randomElement(using: &random)! })
            let collated = a.compare(b, options: [.numeric, .caseInsensitive, .forcedOrdering], range: a.startIndex..<a.endIndex, locale: NSLocale.system as Locale)
            #expect(JSONKeyOrder.lettersOnly(a, b) == (collated == .orderedAscending), "\(a) \(b)")
        }
        #expect(JSONKeyOrder.lettersOnly("a_b", "ab") == nil)
        #expect(JSONKeyOrder.lettersOnly("ab", "a") == false)
    }

    /// The audit and log formats were written by JSONSerialization (sorted, `/` unescaped):
    /// random trees must come out byte for byte as it writes them.
    @Test func seededFuzzMatchesTheBytesJSONSerializationWrote() throws {
        var random = SeededGenerator(seed: 2121)
        let alphabet = Array("aAzZ_-. 0129/\\\"\n\t\u{1}\u{7f}\u{85}\u{2028}éÉ名😀~:[]{}")
        func text() -> String { String((0..<Int.random(in: 0...6, using: &random)).map { _ in alphabet.randomElement(using: &random)! }) }
        for _ in 0..<300 {
            var tree: [(key: String, value: ConfigValue)] = []
            var foundation: [String: Any] = [:]
            for _ in 0..<Int.random(in: 0...8, using: &random) {
                let key = text()
                guard foundation[key] == nil else { continue }
                let (value, plain): (ConfigValue, Any)
                switch Int.random(in: 0...4, using: &random) {
                case 0:
                    let number = Int64.random(in: .min ... .max, using: &random)
                    (value, plain) = (.int(number), number)
                case 1:
                    let number = Double(bitPattern: random.next())
                    (value, plain) = number.isFinite ? (.number(number), number) : (.null, NSNull())
                case 2:
                    let inner = text()
                    (value, plain) = (.object([(inner, .bool(true))]), [inner: true])
                case 3:
                    let item = text()
                    (value, plain) = (.array([.string(item), .null]), [item, NSNull()] as [Any])
                default:
                    let item = text()
                    (value, plain) = (.string(item), item)
                }
                tree.append((key, value))
                foundation[key] = plain
            }
            let expected = String(decoding: try JSONSerialization.data(withJSONObject: foundation, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
            #expect(ConfigRenderer.compactJSON(.object(tree), sortedKeys: true) == expected)
        }
    }

    /// parse → render → parse through `ConfigValue.parse` (the document reader: config, webhook
    /// and engine answers). Characters YAML does not allow raw (DEL, C1, U+2028) were refused
    /// before and still are, so they are left out here.
    @Test func seededFuzzRoundTripsThroughTheDocumentParser() throws {
        var random = SeededGenerator(seed: 21_021)
        let alphabet = Array("aZ09 _-./\\\"'#:,[]{}&*!|>%@`\n\r\t\u{1}\u{8}\u{c}\u{1f}éÉ名😀")
        for round in 0..<300 {
            let tree = Self.tree(depth: 0, alphabet: alphabet, random: &random)
            let text = ConfigRenderer.compactJSON(tree)
            let parsed = try ConfigValue.parse(text, format: .json, source: "round \(round)")
            #expect(parsed == tree, "\(text)")
            #expect(ConfigRenderer.compactJSON(parsed) == text)
        }
    }

    /// The same through the shared decoder (free-form provider answers): every character, key
    /// order and number kind as the decoder reports them.
    @Test func seededFuzzRoundTripsThroughTheSharedDecoder() throws {
        var random = SeededGenerator(seed: 2_102_021)
        let alphabet = Array("aZ09 _-./\\\"\n\t\u{1}\u{7f}\u{85}\u{2028}\u{feff}éÉ名😀")
        for _ in 0..<300 {
            let tree = Self.tree(depth: 0, alphabet: alphabet, random: &random)
            let text = ConfigRenderer.compactJSON(tree)
            let decoded = try JSONCoding.decode(ConfigValue.self, from: Array(text.utf8))
            #expect(decoded == Self.decoderView(tree), "\(text)")
        }
    }

    @Test func sharedDecoderReadsWhatTheDocumentParserRefuses() throws {
        let text = #"{"name":"\ud83d\ude00 Zo\u00eb","path":"a\/b","big":18446744073709551615,"exact":9007199254740993,"none":null,"list":[1.5,true]}"#
        let value = try JSONCoding.decode(ConfigValue.self, from: Array(text.utf8))
        #expect(
            value
                == .object([
                    ("big", .double(18_446_744_073_709_551_615)), ("exact", .int(9_007_199_254_740_993)), ("list", .array([.double(1.5), .bool(true)])),
                    ("name", .string("😀 Zoë")), ("none", .null), ("path", .string("a/b")),
                ]))
    }

    /// What the document parser made of these before the renderer changed, and still makes.
    @Test func documentParserKeepsItsReadingOfNumbersAndEscapes() throws {
        let value = try ConfigValue.parse(#"{"a":"\/é\u0001","b":18446744073709551615,"c":null,"d":1.0,"e":"1","f":-9223372036854775808}"#, format: .json, source: "t")
        #expect(
            value
                == .object([
                    ("a", .string("/é\u{1}")), ("b", .string("18446744073709551615")), ("c", .null), ("d", .double(1)), ("e", .string("1")),
                    ("f", .int(.min)),
                ]))
        #expect(ConfigRenderer.compactJSON(value) == #"{"a":"/é\u0001","b":"18446744073709551615","c":null,"d":1.0,"e":"1","f":-9223372036854775808}"#)
    }

    @Test func gitHubUserFieldsBecomeMetadata() throws {
        let answer = #"{"login":"zoe","id":12345,"name":"Zo\u00eb \ud83d\ude00","bio":"","company":null,"blog":"https://x/y","two_factor_authentication":true}"#
        let user = try JSONCoding.decode(ConfigValue.self, from: Array(answer.utf8))
        let metadata = GitHubDeviceFlow.metadata(user, token: "t0k")
        #expect(
            metadata.mapValues(\.value) == [
                "GITHUB_LOGIN": "zoe", "GITHUB_ID": "12345", "GITHUB_NAME": "Zoë 😀", "GITHUB_BLOG_URL": "https://x/y", "GITHUB_TOKEN": "t0k", "GITHUB_METHOD": "device",
            ])
        #expect(metadata.filter { $0.value.sensitive }.count == 5)
    }

    private static func tree(depth: Int, alphabet: [Character], random: inout SeededGenerator) -> ConfigValue {
        func text() -> String { String((0..<Int.random(in: 0...6, using: &random)).map { _ in alphabet.randomElement(using: &random)! }) }
        switch Int.random(in: depth >= 3 ? 0...4 : 0...6, using: &random) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &random))
        case 2: return .int(Int64.random(in: .min ... .max, using: &random) >> UInt64.random(in: 0...63, using: &random))
        case 3:
            let number = Double(bitPattern: random.next())
            return number.isFinite ? .double(number) : .double(0.5)
        case 4: return .string(text())
        case 5: return .array((0..<Int.random(in: 0...4, using: &random)).map { _ in tree(depth: depth + 1, alphabet: alphabet, random: &random) })
        default:
            var fields: [(key: String, value: ConfigValue)] = []
            for _ in 0..<Int.random(in: 0...4, using: &random) {
                let key = text()
                if !fields.contains(where: { $0.key == key }) { fields.append((key, tree(depth: depth + 1, alphabet: alphabet, random: &random))) }
            }
            return .object(fields)
        }
    }

    /// A tree as the decoder gives it back: keys in byte order, whole doubles that fit Int64 as ints.
    private static func decoderView(_ value: ConfigValue) -> ConfigValue {
        switch value {
        case .double(let number) where number == number.rounded() && abs(number) < 9.2e18: return .int(Int64(number))
        case .array(let items): return .array(items.map(decoderView))
        case .object(let fields): return .object(fields.sorted { $0.key < $1.key }.map { ($0.key, decoderView($0.value)) })
        default: return value
        }
    }
}
