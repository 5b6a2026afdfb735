import BerthCore
import Logging

/// Which detached sessions this server is waiting to see resumed, so that the ones nobody
/// resumed within `persistence.resumeWindow` are counted (`berth_sessions_expired_total`) and
/// logged (`SESSION_EXPIRED`). The agent ends them on its own; Berth only keeps the books. A
/// session resumed through another server, or detached before a restart, is not seen here
/// (docs/agent-protocol.md, "Resumable sessions").
actor DetachedSessionLedger {
    static let shared = DetachedSessionLedger()

    /// Resuming needs a container that outlives the connection, one per user: the owner and the
    /// PID in it name a session.
    private struct Key: Hashable {
        let owner: String
        let pid: UInt32
    }

    private var waiting: [Key: Task<Void, Never>] = [:]
    private(set) var expiredCount = 0
    /// After the window: the agent sends SIGHUP at its end and SIGKILL a few seconds later.
    private let grace: Duration

    init(grace: Duration = .seconds(10)) { self.grace = grace }

    func detached(owner: String, pid: UInt32, window: Duration, logger: Logger) {
        let key = Key(owner: owner, pid: pid)
        waiting[key]?.cancel()
        waiting[key] = Task {
            try? await Task.sleep(for: window + self.grace)
            guard !Task.isCancelled else { return }
            self.expired(key, logger: logger)
        }
    }

    func resumed(owner: String, pid: UInt32) {
        waiting.removeValue(forKey: Key(owner: owner, pid: pid))?.cancel()
    }

    private func expired(_ key: Key, logger: Logger) {
        guard waiting.removeValue(forKey: key) != nil else { return }
        expiredCount += 1
        BerthMetrics.sessionExpired()
        logger.log(.info, "SESSION_EXPIRED", "a detached session was not resumed within persistence.resumeWindow and is gone", ["pid": "\(key.pid)"])
    }

    /// For tests: how many sessions are awaited.
    var count: Int { waiting.count }
}
