#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// UTC timestamps for log lines, syslog frames and S3 signatures, from `gmtime_r`: no formatter
/// object per call (a log line is written for every event) and nothing shared between threads.
public enum UTCTimestamp {
    /// `2026-12-04T21:40:02.605Z` (RFC 3339 with milliseconds).
    public static func rfc3339(_ date: Date = Date()) -> String {
        let (parts, millis) = split(date)
        return "\(pad(parts.year, 4))-\(pad(parts.month, 2))-\(pad(parts.day, 2))T\(pad(parts.hour, 2)):\(pad(parts.minute, 2)):\(pad(parts.second, 2)).\(pad(millis, 3))Z"
    }

    /// `20261204T214002Z` (SigV4's basic ISO 8601 form).
    public static func compact(_ date: Date) -> String {
        let (parts, _) = split(date)
        return "\(pad(parts.year, 4))\(pad(parts.month, 2))\(pad(parts.day, 2))T\(pad(parts.hour, 2))\(pad(parts.minute, 2))\(pad(parts.second, 2))Z"
    }

    private struct Parts { var year, month, day, hour, minute, second: Int }

    private static func split(_ date: Date) -> (Parts, Int) {
        // Whole milliseconds first, so that x.605 (x.6049999… in binary) stays .605.
        let total = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(total / 1000)
        var broken = tm()
        gmtime_r(&seconds, &broken)
        let millis = Int(total % 1000)
        return (
            Parts(
                year: Int(broken.tm_year) + 1900, month: Int(broken.tm_mon) + 1, day: Int(broken.tm_mday),
                hour: Int(broken.tm_hour), minute: Int(broken.tm_min), second: Int(broken.tm_sec)), millis
        )
    }

    private static func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
