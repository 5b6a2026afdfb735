/// RFC 4648 §6 base32, the form TOTP secrets are shared in (authenticator apps, otpauth URIs).
/// Decoding accepts lower case, leaves out spaces and `-` (apps show the secret in groups), and
/// padding is optional; anything else is refused.
public enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    public static func decode(_ text: String) -> [UInt8]? {
        var digits: [UInt8] = []
        var padding = 0
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "-"): continue
            case UInt8(ascii: "="): padding += 1
            default:
                guard padding == 0 else { return nil }
                let upper = (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) ? byte - 32 : byte
                guard let value = alphabet.firstIndex(of: upper) else { return nil }
                digits.append(UInt8(value))
            }
        }
        // Only lengths that end on a whole byte exist (RFC 4648 §6: 8, 2, 4, 5 or 7 digits per group).
        guard [0, 2, 4, 5, 7].contains(digits.count % 8) else { return nil }
        if padding > 0, (digits.count + padding) % 8 != 0 { return nil }
        var result: [UInt8] = []
        var buffer = 0
        var bits = 0
        for digit in digits {
            buffer = (buffer << 5) | Int(digit)
            bits += 5
            if bits >= 8 {
                bits -= 8
                result.append(UInt8((buffer >> bits) & 0xff))
            }
        }
        // The left-over bits must be zero, so each secret has one spelling.
        guard buffer & ((1 << bits) - 1) == 0 else { return nil }
        return result
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        var result = ""
        var buffer = 0
        var bits = 0
        for byte in bytes {
            buffer = (buffer << 8) | Int(byte)
            bits += 8
            while bits >= 5 {
                bits -= 5
                result.append(Character(Unicode.Scalar(alphabet[(buffer >> bits) & 31])))
            }
        }
        if bits > 0 { result.append(Character(Unicode.Scalar(alphabet[(buffer << (5 - bits)) & 31]))) }
        while result.count % 8 != 0 { result.append("=") }
        return result
    }
}
