import BerthCore
import Foundation
import NIOConcurrencyHelpers

/// Keeps `ssh.descriptorReserve` descriptors free for users who are already logged in (their
/// channels, forwards and container links need new ones): while fewer are left under the
/// open-files limit, new connections are closed at once instead of taking the last ones.
/// Counting open descriptors reads a directory, so a count is reused for a short while and
/// every connection admitted since is added to it.
final class DescriptorReserve: Sendable {
    private let reserve: Int
    private let limit: @Sendable () -> Int?
    private let count: @Sendable () -> Int?
    private let recountAfter: Duration
    private let state = NIOLockedValueBox(State())

    private struct State {
        var lastCount: Int?
        var countedAt: ContinuousClock.Instant?
        var admittedSince = 0
        var short = false
    }

    enum Decision: Equatable {
        case admit
        /// `firstTime` is true on the first refusal since descriptors were last plentiful.
        case refuse(open: Int, limit: Int, firstTime: Bool)
    }

    init(
        reserve: Int, recountAfter: Duration = .milliseconds(50),
        limit: @escaping @Sendable () -> Int? = DescriptorReserve.openFilesLimit,
        count: @escaping @Sendable () -> Int? = DescriptorReserve.openDescriptors
    ) {
        self.reserve = reserve
        self.recountAfter = recountAfter
        self.limit = limit
        self.count = count
    }

    func decide(now: ContinuousClock.Instant = .now) -> Decision {
        guard reserve > 0, let limit = limit() else { return .admit }
        return state.withLockedValue { state in
            if state.lastCount == nil || state.countedAt.map({ now - $0 >= recountAfter }) ?? true {
                state.lastCount = count()
                state.countedAt = now
                state.admittedSince = 0
            }
            guard let counted = state.lastCount else { return .admit }
            let open = counted + state.admittedSince
            if open + reserve >= limit {
                defer { state.short = true }
                return .refuse(open: open, limit: limit, firstTime: !state.short)
            }
            state.short = false
            state.admittedSince += 1
            return .admit
        }
    }

    @Sendable static func openFilesLimit() -> Int? {
        var limit = rlimit()
        guard getrlimit(resourceNoFile, &limit) == 0, limit.rlim_cur < rlim_t(Int.max) else { return nil }
        return Int(limit.rlim_cur)
    }

    /// Entries of the process's descriptor directory, less the one the listing itself uses.
    @Sendable static func openDescriptors() -> Int? {
        #if os(Linux)
        let directory = "/proc/self/fd"
        #else
        let directory = "/dev/fd"
        #endif
        guard let handle = opendir(directory) else { return nil }
        defer { closedir(handle) }
        var entries = 0
        while let entry = readdir(handle) {
            let first = withUnsafeBytes(of: entry.pointee.d_name) { $0.first ?? 0 }
            if first != UInt8(ascii: ".") { entries += 1 }
        }
        return max(0, entries - 1)
    }

    #if os(Linux)
    private static let resourceNoFile = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resourceNoFile = RLIMIT_NOFILE
    #endif
}
