import BerthCore
import Foundation

/// Every SSH connection holds descriptors before it logs in; the usual soft limit of 1024
/// (a shell's and systemd's default) lets one client with ~1,200 idle connections lock everyone
/// out. The hard limit is what the operator allows, so Berth raises its soft limit to it at
/// start, as Go programs (ContainerSSH among them) do since Go 1.19.
public enum OpenFilesLimit {
    public struct Change: Equatable, Sendable {
        public let before: UInt64
        public let after: UInt64
    }

    /// Raises the soft RLIMIT_NOFILE to the hard one; returns what it was and is now. Where the
    /// hard limit is unlimited, the kernel's own cap (Linux `nr_open`, macOS `OPEN_MAX`) is what
    /// setrlimit accepts, so that is tried when the unlimited value is refused.
    @discardableResult
    public static func raiseToHardLimit() throws -> Change {
        var limit = rlimit()
        guard getrlimit(resource, &limit) == 0 else { throw failure("getrlimit") }
        let before = UInt64(limit.rlim_cur)
        guard limit.rlim_cur < limit.rlim_max else { return Change(before: before, after: before) }
        limit.rlim_cur = limit.rlim_max
        if setrlimit(resource, &limit) != 0 {
            guard limit.rlim_max == infinity else { throw failure("setrlimit") }
            limit.rlim_cur = rlim_t(kernelCap)
            guard setrlimit(resource, &limit) == 0 else { throw failure("setrlimit") }
        }
        return Change(before: before, after: UInt64(limit.rlim_cur))
    }

    #if os(Linux)
    private static let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    /// glibc's RLIM_INFINITY is `~0`, which Swift cannot import as an unsigned constant.
    private static let infinity = rlim_t.max
    private static var kernelCap: UInt64 {
        let text = (try? String(contentsOfFile: "/proc/sys/fs/nr_open", encoding: .utf8)) ?? ""
        return UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 1_048_576
    }
    #else
    private static let resource = RLIMIT_NOFILE
    private static let infinity = RLIM_INFINITY
    private static var kernelCap: UInt64 { UInt64(OPEN_MAX) }
    #endif

    private static func failure(_ call: String) -> BerthError {
        BerthError("CORE_OPEN_FILES_LIMIT_FAILED", "\(call)(RLIMIT_NOFILE) failed: \(String(cString: strerror(errno)))")
    }
}
