import BerthCore
import Foundation
import Testing

@Suite struct UTCTimestampTests {
    // Expected values from Python's datetime in UTC.
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00.000Z", "19700101T000000Z"),
        (951_782_400.5, "2000-02-29T00:00:00.500Z", "20000229T000000Z"),
        (1_733_348_402.605, "2024-12-04T21:40:02.605Z", "20241204T214002Z"),
        (4_102_444_799.999, "2099-12-31T23:59:59.999Z", "20991231T235959Z"),
    ])
    func knownInstants(seconds: Double, rfc3339: String, compact: String) {
        let date = Date(timeIntervalSince1970: seconds)
        #expect(UTCTimestamp.rfc3339(date) == rfc3339)
        #expect(UTCTimestamp.compact(date) == compact)
    }
}
