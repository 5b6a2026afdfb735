#if os(Linux)
import Foundation
import Testing
@testable import BerthServer

@Suite struct OpenFilesLimitTests {
    @Test func softLimitIsRaisedToTheHardLimit() throws {
        var limit = rlimit()
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        // One below the hard limit: low enough to prove the raise, high enough not to disturb
        // the tests running beside this one.
        let hard = limit.rlim_max
        try #require(hard != rlim_t.max && hard > 64, "needs a finite hard limit")
        limit.rlim_cur = hard - 1
        #expect(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        let change = try OpenFilesLimit.raiseToHardLimit()
        #expect(change == OpenFilesLimit.Change(before: UInt64(hard - 1), after: UInt64(hard)))
        #expect(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0)
        #expect(limit.rlim_cur == hard)
        // Already at the hard limit: nothing to do.
        #expect(try OpenFilesLimit.raiseToHardLimit() == OpenFilesLimit.Change(before: UInt64(hard), after: UInt64(hard)))
    }
}
#endif
