import BerthCore
import BerthConfig
import Foundation

/// RFC 5424 messages over a unix socket (`/dev/log`, datagram or stream) or UDP (`host:port`).
final class SyslogTransport: @unchecked Sendable {
    private static let facilities = ["kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp", "logaudit", "logalert", "clock"]

    private let fd: Int32
    private let stream: Bool
    private let facility: Int
    private let tag: String
    private let host: String

    init(_ config: SyslogConfig) throws {
        facility = Self.facilities.firstIndex(of: config.facility) ?? (config.facility.hasPrefix("local") ? 16 + (Int(config.facility.dropFirst(5)) ?? 0) : 4)
        tag = config.pid ? "\(config.tag)[\(getpid())]" : config.tag
        host = ProcessInfo.processInfo.hostName
        (fd, stream) = try Self.connect(config.destination)
    }

    private static func connect(_ destination: String) throws -> (Int32, Bool) {
        if destination.hasPrefix("/") {
            for kind in [Int32(SOCK_DGRAM.rawValue), Int32(SOCK_STREAM.rawValue)] {
                let fd = socket(AF_UNIX, kind, 0)
                guard fd >= 0 else { continue }
                var address = sockaddr_un()
                address.sun_family = sa_family_t(AF_UNIX)
                let path = Array(destination.utf8CString)
                guard path.count <= MemoryLayout.size(ofValue: address.sun_path) else { close(fd); break }
                withUnsafeMutableBytes(of: &address.sun_path) { raw in
                    for (index, byte) in path.enumerated() { raw[index] = UInt8(bitPattern: byte) }
                }
                let connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Foundation.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
                if connected == 0 { return (fd, kind == Int32(SOCK_STREAM.rawValue)) }
                close(fd)
            }
            throw LogSinkError(path: destination, reason: "cannot connect to the syslog socket")
        }
        guard let colon = destination.lastIndex(of: ":"), let port = UInt16(destination[destination.index(after: colon)...]) else {
            throw LogSinkError(path: destination, reason: "syslog destination must be a socket path or host:port")
        }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_DGRAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let host = String(destination[..<colon]).trimmingCharacters(in: ["[", "]"])
        guard getaddrinfo(host, String(port), &hints, &result) == 0, let info = result else {
            throw LogSinkError(path: destination, reason: "cannot resolve \(host)")
        }
        defer { freeaddrinfo(result) }
        let fd = socket(info.pointee.ai_family, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0, Foundation.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            throw LogSinkError(path: destination, reason: "cannot open a UDP socket")
        }
        return (fd, false)
    }

    /// `severity` is the syslog number (0 emergency … 7 debug); `msgid` the message code.
    func send(severity: Int, msgid: String, message: String) {
        let timestamp = UTCTimestamp.rfc3339()
        var frame = "<\(facility * 8 + severity)>1 \(timestamp) \(host) \(tag) \(getpid()) \(msgid) - \(message)"
        if stream { frame = "\(frame.utf8.count) \(frame)" }
        let bytes = Array(frame.utf8)
        _ = bytes.withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
