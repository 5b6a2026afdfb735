import NIOConcurrencyHelpers

/// Counts open connections overall and per source IP against `ssh.maxConnections` and
/// `ssh.maxConnectionsPerIP` (0 = unlimited).
final class ConnectionLimiter: Sendable {
    private let maxTotal: Int
    private let maxPerIP: Int
    private let counts = NIOLockedValueBox((total: 0, perIP: [String: Int]()))

    init(maxTotal: Int, maxPerIP: Int) {
        self.maxTotal = maxTotal
        self.maxPerIP = maxPerIP
    }

    /// Takes a slot, or returns why there is none.
    func acquire(ip: String) -> String? {
        counts.withLockedValue { counts in
            if maxTotal > 0, counts.total >= maxTotal { return "too many connections" }
            if maxPerIP > 0, counts.perIP[ip, default: 0] >= maxPerIP { return "too many connections from \(ip)" }
            counts.total += 1
            counts.perIP[ip, default: 0] += 1
            return nil
        }
    }

    func release(ip: String) {
        counts.withLockedValue { counts in
            counts.total -= 1
            let remaining = counts.perIP[ip, default: 1] - 1
            counts.perIP[ip] = remaining > 0 ? remaining : nil
        }
    }

    var current: Int { counts.withLockedValue { $0.total } }
}
