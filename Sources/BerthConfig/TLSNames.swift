/// The TLS curve and cipher-suite names ContainerSSH's HTTP client options accept, mapped to
/// their IANA code points so that BerthAuth can hand them to NIOSSL. Names compare
/// case-insensitively; unknown names are refused at config load (they would otherwise be ignored).
public enum TLSNames {
    /// IANA "TLS Supported Groups" code points.
    public static func curve(_ name: String) -> UInt16? {
        switch name.lowercased() {
        case "x25519": 0x001D
        case "secp256r1", "prime256v1", "p-256", "p256": 0x0017
        case "secp384r1", "p-384", "p384": 0x0018
        case "secp521r1", "p-521", "p521": 0x0019
        default: nil
        }
    }

    /// IANA cipher-suite code points, under their IANA, Go (…_CHACHA20_POLY1305 without the hash)
    /// and OpenSSL names.
    public static func cipher(_ name: String) -> UInt16? {
        suites[name.uppercased()]
    }

    /// TLS 1.3 suites: BoringSSL always offers all three, so listing them restricts nothing.
    public static func isTLS13(_ codePoint: UInt16) -> Bool { codePoint >> 8 == 0x13 }

    private static let suites: [String: UInt16] = {
        var table: [String: UInt16] = [:]
        let rows: [(UInt16, [String])] = [
            (0x1301, ["TLS_AES_128_GCM_SHA256"]),
            (0x1302, ["TLS_AES_256_GCM_SHA384"]),
            (0x1303, ["TLS_CHACHA20_POLY1305_SHA256"]),
            (0xC02B, ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"]),
            (0xC02F, ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"]),
            (0xC02C, ["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"]),
            (0xC030, ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"]),
            (0xCCA9, ["TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"]),
            (0xCCA8, ["TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"]),
        ]
        for (code, names) in rows { for name in names { table[name] = code } }
        return table
    }()
}
