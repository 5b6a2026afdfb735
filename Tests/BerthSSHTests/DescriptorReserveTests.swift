import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import BerthSSH

@Suite struct DescriptorReserveTests {
    /// Admits while more than the reserve is left, counts admissions between recounts, refuses
    /// at the reserve and says only the first refusal of a shortage is new.
    @Test func refusesWithinTheReserveAndReportsOncePerShortage() {
        let open = NIOLockedValueBox(80)
        let reserve = DescriptorReserve(reserve: 16, recountAfter: .seconds(1), limit: { 100 }, count: { open.withLockedValue { $0 } })
        let start = ContinuousClock.now
        #expect(reserve.decide(now: start) == .admit)
        #expect(reserve.decide(now: start) == .admit)
        #expect(reserve.decide(now: start) == .admit)
        #expect(reserve.decide(now: start) == .admit)
        // 80 counted + 4 admitted since: 84 + 16 reaches the limit of 100.
        #expect(reserve.decide(now: start) == .refuse(open: 84, limit: 100, firstTime: true))
        #expect(reserve.decide(now: start) == .refuse(open: 84, limit: 100, firstTime: false))
        // Connections closed; the next count finds room again.
        open.withLockedValue { $0 = 50 }
        #expect(reserve.decide(now: start + .seconds(1)) == .admit)
        open.withLockedValue { $0 = 90 }
        #expect(reserve.decide(now: start + .seconds(2)) == .refuse(open: 90, limit: 100, firstTime: true))
    }

    @Test func zeroReserveOrUnknownLimitAdmitsEveryone() {
        #expect(DescriptorReserve(reserve: 0, limit: { 10 }, count: { 10 }).decide() == .admit)
        #expect(DescriptorReserve(reserve: 5, limit: { nil }, count: { 10 }).decide() == .admit)
    }

    /// The real counter sees this process's descriptors (other tests running in parallel may
    /// open or close a few meanwhile, hence 50 and a margin).
    @Test func countsOpenDescriptors() throws {
        let before = try #require(DescriptorReserve.openDescriptors())
        let extra = (0..<50).map { _ in open("/dev/null", O_RDONLY) }
        defer { for fd in extra { close(fd) } }
        let after = try #require(DescriptorReserve.openDescriptors())
        #expect(after >= before + 40)
    }
}
