import BerthConfig
import BerthCore

/// Counts password failures per client address and per username across connections: after
/// `delayAfter` failures each further one is answered later (doubling up to `maxDelay`), at a
/// threshold the address or username is blocked for `blockDuration`, and a count with no
/// failure for `forgetAfter` is dropped. A value type with the clock passed in, so every rule
/// is tested without waiting; `LoginGuard` holds it behind a lock.
///
/// Only password failures count: a key cannot be guessed, and OpenSSH clients offer every key
/// in the agent, so counting them would punish people with several keys. For the same reason a
/// blocked username refuses passwords only; its owner can still log in with a key.
struct LoginProtection {
    typealias Instant = ContinuousClock.Instant

    /// Entries per table; past it the quietest unblocked ones are dropped first, so a scan from
    /// many addresses costs bounded memory and cannot push out the blocks that matter.
    static let defaultCapacity = 10_000

    struct Entry {
        var failures = 0
        var lastFailure: Instant
        var blockedUntil: Instant?
        /// Connections closed during the current block, so only the first is logged loudly.
        var refusals = 0
    }

    enum Kind: String { case address, user }

    struct Verdict: Equatable {
        /// How long to wait before answering this failure.
        var delay: Duration = .zero
        /// What this failure blocked (it reached the threshold just now).
        var blocked: [Kind] = []
    }

    let config: LoginProtectionConfig
    let capacity: Int
    private let allow: [IPBlock]
    private(set) var addresses: [String: Entry] = [:]
    private(set) var users: [String: Entry] = [:]

    init(config: LoginProtectionConfig, capacity: Int = defaultCapacity) {
        self.config = config
        self.capacity = max(1, capacity)
        self.allow = config.allow.compactMap(IPBlock.init)
    }

    func isAllowListed(_ ip: String) -> Bool {
        guard let address = IPAddressBytes(ip) else { return false }
        return allow.contains { $0.contains(address) }
    }

    private func exempt(_ ip: String) -> Bool { !config.enabled || isAllowListed(ip) }

    /// An IPv6 client is counted by its /64, which one host usually has whole, so hopping
    /// between its addresses does not reset the count; an IPv4-mapped address is the IPv4 one.
    static func addressKey(_ ip: String) -> String {
        guard let address = IPAddressBytes(ip) else { return ip }
        return address.isIPv4 ? address.text : "\(address.masked(to: 64).text)/64"
    }

    /// Usernames are bounded so one long name cannot take much memory.
    private static func userKey(_ username: String) -> String { String(username.prefix(256)) }

    /// The address is blocked now (a new connection from it is closed before key exchange).
    func isBlocked(address ip: String, now: Instant) -> Bool {
        !exempt(ip) && Self.blocked(addresses[Self.addressKey(ip)], now: now)
    }

    /// Counts a connection closed because the address is blocked; returns how many there were
    /// in this block, this one included.
    mutating func noteRefusal(address ip: String) -> Int {
        let key = Self.addressKey(ip)
        guard addresses[key] != nil else { return 0 }
        addresses[key]!.refusals += 1
        return addresses[key]!.refusals
    }

    /// Password attempts for this username are refused without being checked.
    func isBlocked(user username: String, from ip: String, now: Instant) -> Bool {
        !exempt(ip) && Self.blocked(users[Self.userKey(username)], now: now)
    }

    /// An ended block stays in the table until the next failure starts a new count, or
    /// eviction drops it.
    private static func blocked(_ entry: Entry?, now: Instant) -> Bool {
        guard let until = entry?.blockedUntil else { return false }
        return now < until
    }

    /// A password was rejected: counts it for the address and the username.
    mutating func recordFailure(address ip: String, user username: String, now: Instant) -> Verdict {
        guard !exempt(ip) else { return Verdict() }
        var verdict = Verdict()
        let addressCount = Self.count(
            &addresses, Self.addressKey(ip), threshold: config.addressThreshold, kind: .address, now: now, config: config, capacity: capacity, verdict: &verdict)
        let userCount = Self.count(&users, Self.userKey(username), threshold: config.userThreshold, kind: .user, now: now, config: config, capacity: capacity, verdict: &verdict)
        verdict.delay = delay(after: max(addressCount, userCount))
        return verdict
    }

    /// The username's owner got in: its count is cleared. The address keeps its count, or one
    /// valid account would let its holder guess other users' passwords unthrottled.
    mutating func recordSuccess(user username: String) {
        users[Self.userKey(username)] = nil
    }

    private static func count(
        _ table: inout [String: Entry], _ key: String, threshold: Int, kind: Kind, now: Instant,
        config: LoginProtectionConfig, capacity: Int, verdict: inout Verdict
    ) -> Int {
        var entry = table[key] ?? Entry(lastFailure: now)
        if let until = entry.blockedUntil, now >= until {
            entry = Entry(lastFailure: now)
        } else if entry.blockedUntil == nil, now - entry.lastFailure >= config.forgetAfter.duration {
            entry.failures = 0
        }
        entry.failures += 1
        entry.lastFailure = now
        if threshold > 0, entry.failures >= threshold, entry.blockedUntil == nil {
            entry.blockedUntil = now + config.blockDuration.duration
            verdict.blocked.append(kind)
        }
        let isNew = table[key] == nil
        table[key] = entry
        if isNew, table.count > capacity { evict(&table, keeping: capacity, now: now) }
        return entry.failures
    }

    /// Drops a tenth of the table at once (so eviction costs little per insert): expired and
    /// unblocked entries first, oldest failure first.
    private static func evict(_ table: inout [String: Entry], keeping capacity: Int, now: Instant) {
        let target = capacity - max(1, capacity / 10)
        let order = table.sorted { lhs, rhs in
            let lhsBlocked = lhs.value.blockedUntil.map { now < $0 } ?? false
            let rhsBlocked = rhs.value.blockedUntil.map { now < $0 } ?? false
            if lhsBlocked != rhsBlocked { return !lhsBlocked }
            return lhs.value.lastFailure < rhs.value.lastFailure
        }
        for (key, _) in order.prefix(table.count - target) { table[key] = nil }
    }

    /// No wait for the first `delayAfter` failures, then `baseDelay`, doubling, capped.
    func delay(after failures: Int) -> Duration {
        let excess = failures - config.delayAfter
        guard excess > 0, config.baseDelay.nanoseconds > 0 else { return .zero }
        let base = config.baseDelay.duration
        let cap = config.maxDelay.duration
        let doublings = min(excess - 1, 40)
        let scaled = base * (1 << doublings)
        return scaled > cap || scaled < base ? cap : scaled
    }
}
