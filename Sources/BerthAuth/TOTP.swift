import BerthConfig
import Crypto
import Foundation

/// RFC 6238 time-based one-time passwords (HOTP of RFC 4226 over the time step), HMAC from
/// swift-crypto.
struct TOTP: Sendable {
    let secret: [UInt8]
    let digits: Int
    let period: Int64
    let algorithm: SecondFactorConfig.Algorithm

    /// The time step `at` falls in (RFC 6238 §4.2, T0 = 0).
    func step(at secondsSince1970: Int64) -> Int64 { secondsSince1970 / period }

    /// RFC 4226 §5.3: dynamic truncation of the HMAC of the big-endian counter.
    func code(step: Int64) -> String {
        var counter = UInt64(bitPattern: step).bigEndian
        let message = withUnsafeBytes(of: &counter) { Data($0) }
        let key = SymmetricKey(data: secret)
        let mac: [UInt8]
        switch algorithm {
        case .sha1: mac = Array(HMAC<Insecure.SHA1>.authenticationCode(for: message, using: key))
        case .sha256: mac = Array(HMAC<SHA256>.authenticationCode(for: message, using: key))
        case .sha512: mac = Array(HMAC<SHA512>.authenticationCode(for: message, using: key))
        }
        let offset = Int(mac[mac.count - 1] & 0x0f)
        let binary = (UInt32(mac[offset] & 0x7f) << 24) | (UInt32(mac[offset + 1]) << 16) | (UInt32(mac[offset + 2]) << 8) | UInt32(mac[offset + 3])
        var modulus: UInt32 = 1
        for _ in 0..<digits { modulus *= 10 }
        let value = String(binary % modulus)
        return String(repeating: "0", count: digits - value.count) + value
    }

    /// The step whose code `answer` is, within `skew` steps of `now`; nil if none. Every
    /// candidate is compared in constant time, so timing does not tell which digits were right.
    func matchingStep(_ answer: String, at now: Int64, skew: Int) -> Int64? {
        let typed = Array(answer.filter { $0 != " " }.utf8)
        let current = step(at: now)
        var found: Int64?
        for candidate in (current - Int64(skew))...(current + Int64(skew)) {
            let expected = Array(code(step: candidate).utf8)
            var difference = UInt8(typed.count == expected.count ? 0 : 1)
            for index in 0..<expected.count { difference |= expected[index] ^ (index < typed.count ? typed[index] : 0) }
            if difference == 0, found == nil { found = candidate }
        }
        return found
    }
}
