/// Encodes data items in their preferred (shortest) form, definite lengths only.
public enum CBOREncoder {
    public static func encode(_ value: CBORValue) -> [UInt8] {
        var output: [UInt8] = []
        encode(value, into: &output)
        return output
    }

    public static func encode(_ value: CBORValue, into output: inout [UInt8]) {
        switch value {
        case .unsigned(let number): head(0, number, &output)
        case .negative(let number): head(1, number, &output)
        case .bytes(let bytes):
            head(2, UInt64(bytes.count), &output)
            output += bytes
        case .text(let text):
            let utf8 = Array(text.utf8)
            head(3, UInt64(utf8.count), &output)
            output += utf8
        case .array(let items):
            head(4, UInt64(items.count), &output)
            for item in items { encode(item, into: &output) }
        case .map(let pairs):
            head(5, UInt64(pairs.count), &output)
            for pair in pairs {
                encode(pair.key, into: &output)
                encode(pair.value, into: &output)
            }
        case .tagged(let tag, let inner):
            head(6, tag, &output)
            encode(inner, into: &output)
        case .bool(let flag): output.append(flag ? 0xF5 : 0xF4)
        case .null: output.append(0xF6)
        case .undefined: output.append(0xF7)
        case .double(let number):
            output.append(0xFB)
            let bits = number.bitPattern
            for shift in stride(from: 56, through: 0, by: -8) { output.append(UInt8((bits >> UInt64(shift)) & 0xFF)) }
        }
    }

    private static func head(_ major: UInt8, _ argument: UInt64, _ output: inout [UInt8]) {
        let type = major << 5
        switch argument {
        case 0..<24: output.append(type | UInt8(argument))
        case 24...0xFF: output += [type | 24, UInt8(argument)]
        case 0x100...0xFFFF: output += [type | 25, UInt8(argument >> 8), UInt8(argument & 0xFF)]
        case 0x1_0000...0xFFFF_FFFF:
            output.append(type | 26)
            for shift in stride(from: 24, through: 0, by: -8) { output.append(UInt8((argument >> UInt64(shift)) & 0xFF)) }
        default:
            output.append(type | 27)
            for shift in stride(from: 56, through: 0, by: -8) { output.append(UInt8((argument >> UInt64(shift)) & 0xFF)) }
        }
    }
}
