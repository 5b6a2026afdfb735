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
        let limiter = ConnectionLimiter(
            maxTotal: 0, maxPerIP: 0, startups: MaxStartups(start: 2, rate: 50, full: 4),
            random: { roll.withLockedValue { $0 } })
        #expect(limiter.acquire(ip: "a") == nil)
        let first = limiter.startupSlot(ip: "a")
        #expect(limiter.acquire(ip: "a") == nil)
        let second = limiter.startupSlot(ip: "a")
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

@Suite struct PerSourceStartupsTests {
    /// One source may hold `perSourceMaxStartups` unauthenticated connections; others still get
    /// in, and a slot that logs in or closes frees its place.
    @Test func capsUnauthenticatedConnectionsPerSource() {
        let limiter = ConnectionLimiter(maxTotal: 0, maxPerIP: 0, perSource: PerSourceStartups(max: 2, v4Bits: 32, v6Bits: 64))
        #expect(limiter.acquire(ip: "192.0.2.1") == nil)
        let first = limiter.startupSlot(ip: "192.0.2.1")
        #expect(limiter.acquire(ip: "192.0.2.1") == nil)
        _ = limiter.startupSlot(ip: "192.0.2.1")
        #expect(limiter.acquire(ip: "192.0.2.1") == "too many unauthenticated connections from 192.0.2.1/32")
        #expect(limiter.acquire(ip: "192.0.2.2") == nil)
        first.settle()
        #expect(limiter.acquire(ip: "192.0.2.1") == nil)
    }

    /// IPv6 addresses of one /64 are one source; an IPv4-mapped address is its IPv4 address.
    @Test func groupsAddressesByBlock() {
        let limiter = ConnectionLimiter(maxTotal: 0, maxPerIP: 0, perSource: PerSourceStartups(max: 1, v4Bits: 24, v6Bits: 64))
        #expect(limiter.sourceKey("2001:db8:1:2::5") == "2001:db8:1:2::/64")
        #expect(limiter.sourceKey("::ffff:198.51.100.7") == "198.51.100.0/24")
        #expect(limiter.acquire(ip: "2001:db8:1:2::5") == nil)
        #expect(limiter.acquire(ip: "2001:db8:1:2:ffff::1") != nil)
        #expect(limiter.acquire(ip: "2001:db8:1:3::1") == nil)
        #expect(limiter.acquire(ip: "198.51.100.7") == nil)
        #expect(limiter.acquire(ip: "198.51.100.200") != nil)
    }

    @Test func blockSizeParsing() {
        #expect(PerSourceStartups.parseBlockSize("32:64")! == (32, 64))
        #expect(PerSourceStartups.parseBlockSize("24")! == (24, 128))
        #expect(PerSourceStartups.parseBlockSize("33:64") == nil)
        #expect(PerSourceStartups.parseBlockSize("32:129") == nil)
        #expect(PerSourceStartups.parseBlockSize("x") == nil)
    }
}
