#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Socket plumbing for `forward-server`: TCP over IPv4/IPv6 and unix sockets.
enum Sockets {
    struct Failure: Error {
        let message: String
        init(_ message: String) { self.message = message }
    }

    /// Connects to `host:port` (tcp) or the socket at `host` (unix).
    static func dial(protocolName: String, host: String, port: UInt64) throws(Failure) -> Int32 {
        if protocolName == "unix" {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure("socket: \(AgentError.reason)") }
            let result = withUnixAddress(host) { connect(fd, $0, $1) }
            guard result == 0 else {
                let reason = AgentError.reason
                close(fd)
                throw Failure("connect \(host): \(reason)")
            }
            return fd
        }
        guard protocolName == "tcp" || protocolName.isEmpty else { throw Failure("unsupported protocol \(protocolName)") }
        var lastError = "no address for \(host)"
        for address in try resolve(host, port, passive: false) {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = "socket: \(AgentError.reason)"; continue }
            let result = address.bytes.withUnsafeBytes { connect(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
            if result == 0 { return fd }
            lastError = "connect \(host):\(port): \(AgentError.reason)"
            close(fd)
        }
        throw Failure(lastError)
    }

    /// A listening socket, and the port it got (for tcp port 0 the kernel picks one).
    static func listen(protocolName: String, host: String, port: UInt64) throws(Failure) -> (fd: Int32, port: UInt64) {
        if protocolName == "unix" {
            let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { throw Failure("socket: \(AgentError.reason)") }
            let bound = withUnixAddress(host) { bind(fd, $0, $1) }
            guard bound == 0, Glibc.listen(fd, 128) == 0 else {
                let reason = AgentError.reason
                close(fd)
                throw Failure("listen on \(host): \(reason)")
            }
            return (fd, 0)
        }
        guard protocolName == "tcp" || protocolName.isEmpty else { throw Failure("unsupported protocol \(protocolName)") }
        // "localhost" means loopback only (RFC 4254 §7.1); "" and "*" mean every address.
        let bindHost: String? =
            switch host {
            case "", "*", "0.0.0.0": nil
            case "localhost": "127.0.0.1"
            default: host
            }
        var lastError = "no address for \(host)"
        for address in try resolve(bindHost, port, passive: true) {
            let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { lastError = "socket: \(AgentError.reason)"; continue }
            var one: Int32 = 1
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
            let bound = address.bytes.withUnsafeBytes { bind(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t($0.count)) }
            if bound == 0, Glibc.listen(fd, 128) == 0 { return (fd, localPort(fd)) }
            lastError = "listen on \(host):\(port): \(AgentError.reason)"
            close(fd)
        }
        throw Failure(lastError)
    }

    /// The peer of an accepted tcp socket as printable address and port.
    static func peer(_ fd: Int32) -> (address: String, port: UInt64) {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
        }
        guard result == 0 else { return ("", 0) }
        return describe(&storage)
    }

    private static func localPort(_ fd: Int32) -> UInt64 {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return result == 0 ? describe(&storage).port : 0
    }

    private static func describe(_ storage: inout sockaddr_storage) -> (address: String, port: UInt64) {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(storage.ss_family) {
        case AF_INET:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var raw = address.pointee.sin_addr
                    inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
                    return (String(cString: text), UInt64(UInt16(bigEndian: address.pointee.sin_port)))
                }
            }
        case AF_INET6:
            return withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var raw = address.pointee.sin6_addr
                    inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
                    return (String(cString: text), UInt64(UInt16(bigEndian: address.pointee.sin6_port)))
                }
            }
        default:
            return ("", 0)
        }
    }

    private struct Address {
        let family: Int32
        let bytes: [UInt8]
    }

    private static func resolve(_ host: String?, _ port: UInt64, passive: Bool) throws(Failure) -> [Address] {
        guard port <= 65535 else { throw Failure("port \(port) out of range") }
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = passive ? AI_PASSIVE : 0
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            throw Failure("cannot resolve \(host ?? "*"): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var result: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let entry = cursor {
            let bytes = UnsafeRawBufferPointer(start: entry.pointee.ai_addr, count: Int(entry.pointee.ai_addrlen))
            result.append(Address(family: entry.pointee.ai_family, bytes: Array(bytes)))
            cursor = entry.pointee.ai_next
        }
        // Passive lookups list IPv6 first on some systems; bind IPv4's wildcard so the port is
        // reachable on 127.0.0.1 even where IPv6 is off.
        return passive ? result.sorted { $0.family == AF_INET && $1.family != AF_INET } : result
    }

    private static func withUnixAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}

/// Fills `buffer` from a blocking descriptor; false at end of file or on an error.
func readExactly(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
    var offset = 0
    while offset < buffer.count {
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, $0.count - offset) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return false }
        offset += count
    }
    return true
}

/// The X11 side of forwarding: the first free display from 10 up, as sshd's X11DisplayOffset, on
/// the loopback address only (sshd's X11UseLocalhost), so each X11 session gets its own.
enum X11Display {
    static let first: UInt64 = 10
    static let last: UInt64 = 999

    static func listen() throws(Sockets.Failure) -> (fd: Int32, display: UInt64) {
        for display in first...last {
            if let listener = try? Sockets.listen(protocolName: "tcp", host: "127.0.0.1", port: 6000 + display) {
                return (listener.fd, display)
            }
        }
        throw Sockets.Failure("no free X11 display between \(first) and \(last)")
    }
}
