import Crypto

/// Persistent mode's pod (Kubernetes) or container and volume (Docker) per user: a name the API
/// server accepts (an RFC 1123 label, so it is also the pod's host name; Docker accepts it as a
/// container and volume name too) that stays readable, with a hash of the exact username so that
/// names which read the same (`Alice`, `alice`, `a.lice`) still get pods of their own.
public enum UserPodName {
    public static func make(prefix: String, username: String) -> String {
        let hash = SHA256.hash(data: Array(username.utf8)).map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined().prefix(16)
        let readable = [dnsPart(prefix), dnsPart(username)].filter { !$0.isEmpty }.joined(separator: "-")
        let room = 63 - hash.count - 1
        let head = String(readable.prefix(room)).trimmingDashes
        return head.isEmpty ? String(hash) : "\(head)-\(hash)"
    }

    /// Lowercase letters and digits kept, every other run of characters one `-`.
    private static func dnsPart(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            let lower = scalar.properties.lowercaseMapping
            if lower.count == 1, let c = lower.unicodeScalars.first, c.isASCII, ("a"..."z").contains(c) || ("0"..."9").contains(c) {
                out.unicodeScalars.append(c)
            } else if !out.hasSuffix("-") {
                out.append("-")
            }
        }
        return out.trimmingDashes
    }
}

private extension String {
    var trimmingDashes: String {
        String(drop { $0 == "-" }.reversed().drop { $0 == "-" }.reversed())
    }
}
