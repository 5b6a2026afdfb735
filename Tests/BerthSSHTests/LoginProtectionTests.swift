import BerthConfig
import Testing
@testable import BerthSSH

/// The login protection rules with a clock the test moves: no waiting.
@Suite struct LoginProtectionTests {
    private let start = ContinuousClock.now

    private func config(_ change: (inout LoginProtectionConfig) -> Void = { _ in }) -> LoginProtectionConfig {
        var config = LoginProtectionConfig()
        config.delayAfter = 2
        config.baseDelay = .seconds(1)
        config.maxDelay = .seconds(5)
        config.addressThreshold = 6
        config.userThreshold = 4
        config.blockDuration = .seconds(60)
        config.forgetAfter = .seconds(300)
        change(&config)
        return config
    }

    private func at(_ seconds: Int) -> ContinuousClock.Instant { start + .seconds(seconds) }

    @Test func delaysGrowExponentiallyUpToTheCap() {
        var protection = LoginProtection(
            config: config {
                $0.userThreshold = 0; $0.addressThreshold = 0
            })
        let delays = (0..<7).map { protection.recordFailure(address: "192.0.2.1", user: "u\($0)", now: at($0)).delay }
        #expect(delays == [.zero, .zero, .seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5)])
    }

    /// A username reaching its threshold blocks its passwords from every address, but not other
    /// usernames from the same address.
    @Test func userBlockIsPerUsername() {
        var protection = LoginProtection(config: config())
        var verdicts: [LoginProtection.Verdict] = []
        for index in 0..<4 { verdicts.append(protection.recordFailure(address: "192.0.2.\(index)", user: "alice", now: at(index))) }
        #expect(verdicts.last?.blocked == [.user])
        #expect(protection.isBlocked(user: "alice", from: "198.51.100.9", now: at(5)))
        #expect(!protection.isBlocked(user: "bob", from: "192.0.2.3", now: at(5)))
        #expect(!protection.isBlocked(address: "192.0.2.3", now: at(5)))
        // The block ends after blockDuration, and counting starts again.
        #expect(!protection.isBlocked(user: "alice", from: "192.0.2.3", now: at(3 + 60)))
        #expect(protection.recordFailure(address: "192.0.2.1", user: "alice", now: at(70)).blocked == [])
    }

    @Test func addressBlockAfterItsThresholdAcrossUsernames() {
        var protection = LoginProtection(config: config())
        for index in 0..<5 {
            #expect(protection.recordFailure(address: "192.0.2.1", user: "user\(index)", now: at(index)).blocked == [])
        }
        #expect(!protection.isBlocked(address: "192.0.2.1", now: at(5)))
        #expect(protection.recordFailure(address: "192.0.2.1", user: "user5", now: at(5)).blocked == [.address])
        #expect(protection.isBlocked(address: "192.0.2.1", now: at(6)))
        #expect(protection.noteRefusal(address: "192.0.2.1") == 1)
        #expect(protection.noteRefusal(address: "192.0.2.1") == 2)
        #expect(!protection.isBlocked(address: "192.0.2.2", now: at(6)))
        #expect(!protection.isBlocked(address: "192.0.2.1", now: at(5 + 60)))
    }

    /// Addresses of one IPv6 /64 count together; IPv4 addresses each on their own.
    @Test func ipv6AddressesCountByTheirSlash64() {
        var protection = LoginProtection(
            config: config {
                $0.addressThreshold = 3; $0.userThreshold = 0
            })
        for index in 1...3 { _ = protection.recordFailure(address: "2001:db8:1:2::\(index)", user: "u", now: at(index)) }
        #expect(protection.isBlocked(address: "2001:db8:1:2:abcd::9", now: at(4)))
        #expect(!protection.isBlocked(address: "2001:db8:1:3::1", now: at(4)))
        #expect(LoginProtection.addressKey("::ffff:192.0.2.7") == "192.0.2.7")
    }

    @Test func countsAreForgottenAfterAQuietPeriod() {
        var protection = LoginProtection(config: config())
        for index in 0..<3 { _ = protection.recordFailure(address: "192.0.2.1", user: "alice", now: at(index)) }
        // 300 s without a failure: this one is the first again (no delay, no block).
        let verdict = protection.recordFailure(address: "192.0.2.1", user: "alice", now: at(2 + 300))
        #expect(verdict == LoginProtection.Verdict())
        #expect(protection.users["alice"]?.failures == 1)
    }

    @Test func allowListedAddressesAreNeverCountedOrBlocked() {
        var protection = LoginProtection(config: config { $0.allow = ["10.0.0.0/8", "fd00::/8"] })
        for index in 0..<20 {
            #expect(protection.recordFailure(address: "10.1.2.3", user: "alice", now: at(index)) == LoginProtection.Verdict())
        }
        #expect(protection.addresses.isEmpty && protection.users.isEmpty)
        for index in 0..<4 { _ = protection.recordFailure(address: "192.0.2.1", user: "alice", now: at(index)) }
        // alice is blocked, but not from the allow list.
        #expect(protection.isBlocked(user: "alice", from: "192.0.2.1", now: at(5)))
        #expect(!protection.isBlocked(user: "alice", from: "fd00::1", now: at(5)))
    }

    @Test func successClearsTheUsernameNotTheAddress() {
        var protection = LoginProtection(config: config())
        for index in 0..<3 { _ = protection.recordFailure(address: "192.0.2.1", user: "alice", now: at(index)) }
        protection.recordSuccess(user: "alice")
        #expect(protection.users["alice"] == nil)
        #expect(protection.addresses["192.0.2.1"]?.failures == 3)
    }

    @Test func disabledProtectionDoesNothing() {
        var protection = LoginProtection(config: config { $0.enabled = false })
        for index in 0..<10 { _ = protection.recordFailure(address: "192.0.2.1", user: "alice", now: at(index)) }
        #expect(!protection.isBlocked(address: "192.0.2.1", now: at(10)))
        #expect(!protection.isBlocked(user: "alice", from: "192.0.2.1", now: at(10)))
    }

    /// A scan from many addresses cannot grow the tables past their capacity, and the entries
    /// that are blocked stay.
    @Test func tablesAreBoundedAndKeepBlocks() {
        var protection = LoginProtection(
            config: config {
                $0.addressThreshold = 2; $0.userThreshold = 0
            }, capacity: 100)
        _ = protection.recordFailure(address: "198.51.100.1", user: "x", now: at(0))
        _ = protection.recordFailure(address: "198.51.100.1", user: "x", now: at(0))
        for index in 0..<5000 {
            _ = protection.recordFailure(address: "10.\(index / 65536).\(index / 256 % 256).\(index % 256)", user: "x", now: at(1))
            #expect(protection.addresses.count <= 100)
        }
        #expect(protection.isBlocked(address: "198.51.100.1", now: at(2)))
    }
}
