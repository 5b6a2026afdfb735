import BerthConfig
import Foundation
import Testing

@testable import BerthKubernetes

@Suite struct KubernetesLeaseTests {
    @Test func namesAreDNSNamesAndStablePerIdentity() {
        let name = KubernetesLease.name(for: "berth-7f9c_10.0.0.1:2222")
        #expect(name == KubernetesLease.name(for: "berth-7f9c_10.0.0.1:2222") && name != KubernetesLease.name(for: "other"))
        #expect(name.count <= 63 && name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" })
    }

    @Test func microTimeHasSixDigitsAndReadsBack() throws {
        let date = Date(timeIntervalSince1970: 1_764_892_800.123456)
        let text = KubernetesLease.microTime(date)
        #expect(text.wholeMatch(of: /\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z/) != nil)
        #expect(text.hasPrefix("2025-12-05T00:00:00.123"))
        let parsed = try #require(KubernetesLease.parseMicroTime(text))
        #expect(abs(parsed.timeIntervalSince(date)) < 0.001)
        #expect(KubernetesLease.parseMicroTime("2025-12-05T00:00:00Z") != nil)
    }

    @Test func aLeaseIsAliveUntilTwiceItsDuration() {
        let now = Date(timeIntervalSince1970: 1_764_892_800)
        func lease(renewedAgo seconds: TimeInterval) -> ConfigValue {
            .object([("spec", .object([("renewTime", .string(KubernetesLease.microTime(now.addingTimeInterval(-seconds))))]))])
        }
        #expect(KubernetesLease.isAlive(lease(renewedAgo: 10), now: now))
        #expect(KubernetesLease.isAlive(lease(renewedAgo: 119), now: now))
        #expect(!KubernetesLease.isAlive(lease(renewedAgo: 121), now: now))
        #expect(!KubernetesLease.isAlive(nil, now: now))
        // Unreadable: alive (never remove what might be live).
        #expect(KubernetesLease.isAlive(.object([("spec", .object([("renewTime", .string("yesterday"))]))]), now: now))
    }
}
