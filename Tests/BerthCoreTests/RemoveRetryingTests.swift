import BerthCore
import Logging
import NIOConcurrencyHelpers
import Testing

@Suite struct RemoveRetryingTests {
    private let logger = Logger(label: "test")

    private func remove(limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async {
        await removeRetrying(
            "pod", [:], limit: limit, pause: .milliseconds(5), removed: "KUBERNETES_POD_REMOVED", failed: "KUBERNETES_POD_REMOVE_FAILED",
            logger: logger, body)
    }

    struct Busy: Error {}

    @Test func anAnswerLaterStillRemoves() async {
        let attempts = NIOLockedValueBox(0)
        await remove(limit: .seconds(30)) {
            let attempt = attempts.withLockedValue {
                $0 += 1; return $0
            }
            if attempt < 3 { throw Busy() }
        }
        #expect(attempts.withLockedValue { $0 } == 3)
    }

    @Test func itStopsAtTheLimit() async {
        let attempts = NIOLockedValueBox(0)
        await remove(limit: .milliseconds(50)) {
            attempts.withLockedValue { $0 += 1 }
            throw Busy()
        }
        #expect(attempts.withLockedValue { $0 } >= 1)
    }

    /// A session that ends because its channel closed removes its pod from a cancelled task;
    /// the removal must not inherit that (every HTTP call would fail at once).
    @Test func aCancelledCallerStillRemoves() async {
        let removed = NIOLockedValueBox(false)
        let caller = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            await remove(limit: .seconds(30)) {
                try Task.checkCancellation()
                removed.withLockedValue { $0 = true }
            }
        }
        await caller.value
        #expect(removed.withLockedValue { $0 })
    }
}
