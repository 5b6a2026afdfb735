#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// `serve --listen`: Berth's link over the pod network. Unlike the bind-mounted socket, anyone
/// on that network can connect, so every connection gets a thread of its own and at most
/// `helloSeconds` to prove the secret: a peer that connects and stays silent cannot keep Berth
/// out. The first peer that proves it is the link; the listener closes then.
final class TCPLinkListener: @unchecked Sendable {
    private let secret: [UInt8]
    private let monitor = Monitor()
    private var link: Int32?
    static let helloSeconds = 10

    init(secret: [UInt8]) {
        self.secret = secret
    }

    func accept(_ host: String, _ port: UInt64) -> Int32 {
        let listener: Int32
        do {
            listener = try Sockets.listen(protocolName: "tcp", host: host, port: port).fd
        } catch {
            AgentError.fail(1, error.message)
        }
        startThread { [self] in acceptLoop(listener) }
        let link = monitor.locked { () -> Int32 in
            while self.link == nil { monitor.wait() }
            return self.link!
        }
        // Wakes the accept loop, which then ends; the port is free from here on.
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        return link
    }

    private func acceptLoop(_ listener: Int32) {
        while true {
            let peer = Glibc.accept(listener, nil, nil)
            if peer < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if monitor.locked({ link != nil }) { return }
                AgentError.fail(1, "accept on the link port: \(AgentError.reason)")
            }
            _ = fcntl(peer, F_SETFD, FD_CLOEXEC)
            startThread { [self] in greet(peer) }
        }
    }

    private func greet(_ peer: Int32) {
        Self.setReceiveTimeout(peer, seconds: Self.helloSeconds)
        guard Serve.readHello(peer, writeTo: peer, secret: secret) else {
            close(peer)
            return
        }
        let won = monitor.locked { () -> Bool in
            guard link == nil else { return false }
            link = peer
            monitor.broadcast()
            return true
        }
        if won {
            Self.setReceiveTimeout(peer, seconds: 0)
            var one: Int32 = 1
            setsockopt(peer, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        } else {
            close(peer)
        }
    }

    /// 0: no timeout (the link itself may be idle for as long as the user is).
    private static func setReceiveTimeout(_ fd: Int32, seconds: Int) {
        var limit = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    }
}
