import BerthConfig
import BerthCore
import NIOConcurrencyHelpers

/// Counts open connections overall and per source IP against `ssh.maxConnections` and
/// `ssh.maxConnectionsPerIP` (0 = unlimited), and connections that have not authenticated yet
/// against `ssh.maxStartups`, which sheds unauthenticated floods the way OpenSSH does: past
/// `start` a newcomer is dropped with a probability that grows to 100 % at `full`, so a flood
/// cannot keep out users who are already in, and a real user still gets through now and then.
/// `ssh.perSourceMaxStartups` caps the unauthenticated ones per source block, so one address
/// cannot take all of `maxStartups` from everyone else.
final class ConnectionLimiter: Sendable {
    private let maxTotal: Int
    private let maxPerIP: Int
    private let startups: MaxStartups
    private let perSource: PerSourceStartups
    private let random: @Sendable () -> Int
    private let counts = NIOLockedValueBox(Counts())

    private struct Counts {
        var total = 0
        var unauthenticated = 0
        var perIP: [String: Int] = [:]
        var unauthenticatedPerSource: [String: Int] = [:]
    }

    /// `random` returns a number in 0..<100 (a test injects its own).
    init(
        maxTotal: Int, maxPerIP: Int, startups: MaxStartups = .unlimited, perSource: PerSourceStartups = PerSourceStartups(max: 0),
        random: @escaping @Sendable () -> Int = { Int.random(in: 0..<100) }
    ) {
        self.maxTotal = maxTotal
        self.maxPerIP = maxPerIP
        self.startups = startups
        self.perSource = perSource
        self.random = random
    }

    /// Takes a slot (counted as unauthenticated), or returns why there is none.
    func acquire(ip: String) -> String? {
        let source = sourceKey(ip)
        return counts.withLockedValue { counts in
            if maxTotal > 0, counts.total >= maxTotal { return "too many connections" }
            if maxPerIP > 0, counts.perIP[ip, default: 0] >= maxPerIP { return "too many connections from \(ip)" }
            if perSource.max > 0, counts.unauthenticatedPerSource[source, default: 0] >= perSource.max {
                return "too many unauthenticated connections from \(source)"
            }
            if let refusal = startupRefusal(unauthenticated: counts.unauthenticated) { return refusal }
            counts.total += 1
            counts.unauthenticated += 1
            counts.perIP[ip, default: 0] += 1
            counts.unauthenticatedPerSource[source, default: 0] += 1
            return nil
        }
    }

    /// The source block an address belongs to, e.g. `2001:db8:1:2::/64`; an address that does
    /// not parse is its own source.
    func sourceKey(_ ip: String) -> String {
        guard let address = IPAddressBytes(ip) else { return ip }
        let bits = address.isIPv4 ? perSource.v4Bits : perSource.v6Bits
        return "\(address.masked(to: bits).text)/\(bits)"
    }

    private func startupRefusal(unauthenticated: Int) -> String? {
        guard !startups.isUnlimited, unauthenticated >= startups.start else { return nil }
        if unauthenticated >= startups.full { return "too many unauthenticated connections" }
        let span = max(1, startups.full - startups.start)
        let chance = startups.rate + (100 - startups.rate) * (unauthenticated - startups.start) / span
        return random() < chance ? "too many unauthenticated connections" : nil
    }

    /// A slot that leaves the `maxStartups` count exactly once: when the connection
    /// authenticates or, failing that, when it closes, whichever comes first.
    func startupSlot(ip: String) -> StartupSlot { StartupSlot(limiter: self, source: sourceKey(ip)) }

    fileprivate func leaveStartup(source: String) {
        counts.withLockedValue { counts in
            counts.unauthenticated -= 1
            let remaining = counts.unauthenticatedPerSource[source, default: 1] - 1
            counts.unauthenticatedPerSource[source] = remaining > 0 ? remaining : nil
        }
    }

    /// The connection closed; call `StartupSlot.settle()` too.
    func release(ip: String) {
        counts.withLockedValue { counts in
            counts.total -= 1
            let remaining = counts.perIP[ip, default: 1] - 1
            counts.perIP[ip] = remaining > 0 ? remaining : nil
        }
    }

    var current: Int { counts.withLockedValue { $0.total } }
    var unauthenticated: Int { counts.withLockedValue { $0.unauthenticated } }
}

final class StartupSlot: Sendable {
    private let limiter: ConnectionLimiter
    private let source: String
    private let held = NIOLockedValueBox(true)

    fileprivate init(limiter: ConnectionLimiter, source: String) {
        self.limiter = limiter
        self.source = source
    }

    func settle() {
        let wasHeld = held.withLockedValue { held in
            defer { held = false }
            return held
        }
        if wasHeld { limiter.leaveStartup(source: source) }
    }
}
