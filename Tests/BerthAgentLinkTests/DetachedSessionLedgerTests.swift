import Logging
import Testing

@testable import BerthAgentLink

@Suite struct DetachedSessionLedgerTests {
    private let logger = Logger(label: "test")

    /// Polls without a time limit of its own: the test runner's limit is the bound.
    private func eventually(_ condition: @escaping () async -> Bool) async throws {
        while !(await condition()) { try await Task.sleep(for: .milliseconds(10)) }
    }

    @Test func aSessionNotResumedWithinTheWindowIsCountedOnce() async throws {
        let ledger = DetachedSessionLedger(grace: .zero)
        await ledger.detached(owner: "alice", pid: 42, window: .milliseconds(20), logger: logger)
        #expect(await ledger.count == 1)
        try await eventually { await ledger.count == 0 }
        #expect(await ledger.expiredCount == 1)
    }

    @Test func aResumedSessionIsNotExpired() async throws {
        let ledger = DetachedSessionLedger(grace: .zero)
        await ledger.detached(owner: "alice", pid: 42, window: .seconds(3600), logger: logger)
        await ledger.detached(owner: "bob", pid: 42, window: .milliseconds(20), logger: logger)
        await ledger.resumed(owner: "alice", pid: 42)
        try await eventually { await ledger.count == 0 }
        // Only bob's went by its window; alice's was resumed, and another user's PID 42 is not hers.
        #expect(await ledger.expiredCount == 1)
    }
}
