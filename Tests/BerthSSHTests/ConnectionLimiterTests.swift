import BerthConfig
import NIOConcurrencyHelpers
import Testing
@testable import BerthSSH

@Suite struct ConnectionLimiterTests {
    @Test func totalAndPerIPLimits() {
        let limiter = ConnectionLimiter(maxTotal: 3, maxPerIP: 2)
        #expect(limiter.acquire(ip: "10.0.0.1") == nil)
        #expect(limiter.acquire(ip: "10.0.0.1") == nil)
        #expect(limiter.acquire(ip: "10.0.0.1") == "too many connections from 10.0.0.1")
        #expect(limiter.acquire(ip: "10.0.0.2") == nil)
        #expect(limiter.acquire(ip: "10.0.0.3") == "too many connections")
        limiter.release(ip: "10.0.0.1")
        #expect(limiter.acquire(ip: "10.0.0.3") == nil)
        #expect(limiter.current == 3)
    }

    /// Below `start` nobody is dropped; between `start` and `full` the drop chance rises from
    /// `rate`% to 100%; at `full` everyone is dropped; authenticated connections don't count.
    @Test func maxStartupsDropsUnauthenticatedNewcomersProgressively() {
        let roll = NIOLockedValueBox(0)
        let limiter = ConnectionLimiter(maxTotal: 0, maxPerIP: 0, startups: MaxStartups(start: 2, rate: 50, full: 4),
                                        random: { roll.withLockedValue { $0 } })
        #expect(limiter.acquire(ip: "a") == nil)
        let first = limiter.startupSlot()
        #expect(limiter.acquire(ip: "a") == nil)
        let second = limiter.startupSlot()
        // 2 unauthenticated: chance 50%. A roll of 49 drops, 50 passes.
        roll.withLockedValue { $0 = 49 }
        #expect(limiter.acquire(ip: "a") == "too many unauthenticated connections")
        roll.withLockedValue { $0 = 50 }
        #expect(limiter.acquire(ip: "a") == nil)
        // 3 unauthenticated: chance 75%.
        roll.withLockedValue { $0 = 74 }
        #expect(limiter.acquire(ip: "a") != nil)
        roll.withLockedValue { $0 = 75 }
        #expect(limiter.acquire(ip: "a") == nil)
        // 4 = full: always dropped.
        roll.withLockedValue { $0 = 99 }
        #expect(limiter.acquire(ip: "a") == "too many unauthenticated connections")
        #expect(limiter.unauthenticated == 4)
        // Two log in: they stop counting, newcomers get through again. A slot settles once, so
        // the close after the login does not count the connection a second time.
        first.settle()
        second.settle()
        roll.withLockedValue { $0 = 99 }
        #expect(limiter.acquire(ip: "a") == nil)
        #expect(limiter.unauthenticated == 3)
        first.settle()
        limiter.release(ip: "a")
        #expect(limiter.unauthenticated == 3)
        #expect(limiter.current == 4)
    }

    @Test func unlimitedStartupsNeverDrop() {
        let limiter = ConnectionLimiter(maxTotal: 0, maxPerIP: 0, startups: .unlimited, random: { 0 })
        for _ in 0..<500 { #expect(limiter.acquire(ip: "a") == nil) }
    }
}
