#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An IPv4 or IPv6 address as its bytes (4 or 16), so limits and allow lists can compare
/// network prefixes instead of strings. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a
/// dual-stack listener reports for IPv4 clients) is the IPv4 address.
public struct IPAddressBytes: Sendable, Hashable {
    public let bytes: [UInt8]

    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let all = withUnsafeBytes(of: &v6) { Array($0) }
        if all[0..<10].allSatisfy({ $0 == 0 }), all[10] == 0xff, all[11] == 0xff {
            bytes = Array(all[12...])
        } else {
            bytes = all
        }
    }

    public var isIPv4: Bool { bytes.count == 4 }

    /// The usual text form (`10.0.0.0`, `2001:db8::`).
    public var text: String {
        var buffer = [CChar](repeating: 0, count: 64)
        let family = isIPv4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count))
        }
        guard written != nil else { return bytes.map(String.init).joined(separator: ".") }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address with every bit after the first `bits` cleared.
    public func masked(to bits: Int) -> IPAddressBytes {
        var copy = bytes
        for index in copy.indices {
            let keep = min(8, max(0, bits - index * 8))
            copy[index] &= keep == 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        return IPAddressBytes(bytes: copy)
    }

    private init(bytes: [UInt8]) { self.bytes = bytes }
}

/// A CIDR block such as `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
public struct IPBlock: Sendable, Hashable, CustomStringConvertible {
    public let network: IPAddressBytes
    public let bits: Int
    public let description: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddressBytes(String(parts[0])) else { return nil }
        let width = address.bytes.count * 8
        var bits = width
        if parts.count == 2 {
            guard let parsed = Int(parts[1]), (0...width).contains(parsed) else { return nil }
            bits = parsed
        }
        self.network = address.masked(to: bits)
        self.bits = bits
        self.description = text
    }

    public func contains(_ address: IPAddressBytes) -> Bool {
        address.bytes.count == network.bytes.count && address.masked(to: bits) == network
    }
}
