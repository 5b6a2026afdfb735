#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// Where agent processes of a container find each other's detached sessions: each link may be
/// its own agent process (`serve --stdio`, one per exec stream), so a session detached in one is
/// attached from another. A directory only the agent's user can enter, with one unix socket per
/// process that holds detached sessions (docs/agent-protocol.md, "Resumable sessions").
enum ResumeDirectory {
    /// `serve --resume-dir`; else the first usable of `/run/berth-resume` (root) and
    /// `/tmp/berth-resume-<uid>`, which every agent process of the container picks alike.
    nonisolated(unsafe) static var explicit: String?

    private static var candidates: [String] {
        if let explicit { return [explicit] }
        let fallback = "/tmp/berth-resume-\(geteuid())"
        return geteuid() == 0 ? ["/run/berth-resume", fallback] : [fallback]
    }

    /// The directory, created 0700 if missing; never one that is not a real directory of this
    /// user closed to everyone else (a planted symlink or a foreign directory is not used).
    static func ensure() -> String? {
        for path in candidates {
            _ = mkdir(path, 0o700)
            var info = stat()
            if lstat(path, &info) == 0, info.st_mode & 0o170000 == 0o040000, info.st_uid == geteuid(), info.st_mode & 0o077 == 0 {
                return path
            }
        }
        return nil
    }
}

/// This process's listener for other agent processes (sub-links), and the client side that asks
/// the others.
final class ResumeHolder: @unchecked Sendable {
    static let shared = ResumeHolder()
    private let lock = Lock()
    private var listening = false
    private var socketPath: String?

    /// Starts listening once (the first detach).
    func listen() {
        let start = lock.locked { () -> Bool in
            defer { listening = true }
            return !listening
        }
        guard start, let directory = ResumeDirectory.ensure() else { return }
        let path = "\(directory)/\(getpid()).sock"
        lock.locked { socketPath = path }
        unlink(path)
        let listener: Int32
        do {
            listener = try Sockets.listen(protocolName: "unix", host: path, port: 0).fd
        } catch {
            return
        }
        chmod(path, 0o600)
        startThread {
            while true {
                let peer = accept(listener, nil, nil)
                if peer < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return
                }
                _ = fcntl(peer, F_SETFD, FD_CLOEXEC)
                startThread {
                    LinkServer(subLink: true).serve(read: peer, write: peer)
                    closeDescriptor(peer)
                }
            }
        }
    }

    func stop() {
        if let path = lock.locked({ socketPath }) { unlink(path) }
    }

    struct Peer {
        let path: String
        let sessions: [AgentDetachedSession]
    }

    /// The detached sessions of `owner` held by the container's other agent processes. A socket
    /// nobody listens on is left over from a killed process and removed.
    func peerSessions(of owner: String) -> [Peer] {
        guard let directory = ResumeDirectory.ensure(), let handle = opendir(directory) else { return [] }
        defer { closedir(handle) }
        var peers: [Peer] = []
        let own = "\(getpid()).sock"
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            guard name.hasSuffix(".sock"), name != own else { continue }
            let path = "\(directory)/\(name)"
            guard let fd = SubLink.connect(path) else {
                if errno == ECONNREFUSED { unlink(path) }
                continue
            }
            defer { closeDescriptor(fd) }
            guard SubLink.request(fd, .resumable, 1, AgentResumable(owner: owner, windowSeconds: 0, bufferBytes: 0).encoded()) != nil,
                let reply = SubLink.request(fd, .sessions, 2, []),
                let list = try? AgentSessionList(decoding: reply)
            else { continue }
            if !list.sessions.isEmpty { peers.append(Peer(path: path, sessions: list.sessions)) }
        }
        return peers
    }
}

/// Blocking frame exchange with another agent process (a sub-link).
enum SubLink {
    static func connect(_ path: String) -> Int32? {
        guard let fd = try? Sockets.dial(protocolName: "unix", host: path, port: 0) else { return nil }
        // A stuck peer must not hold up Berth's link for long.
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return fd
    }

    /// Sends a request and returns the payload of its `ok` (nil: `error`, or the peer failed).
    static func request(_ fd: Int32, _ type: AgentFrameType, _ channel: UInt32, _ payload: [UInt8]) -> [UInt8]? {
        guard writeAll(fd, AgentFrame(type, channel: channel, payload: payload).encoded()),
            let frame = readFrame(fd), frame.channel == channel, frame.type == .ok
        else { return nil }
        return frame.payload
    }

    static func readFrame(_ fd: Int32) -> AgentFrame? {
        var header = [UInt8](repeating: 0, count: AgentFrameHeader.size)
        guard readExactly(fd, &header), let parsed = try? AgentFrameHeader(parsing: header) else { return nil }
        var payload = [UInt8](repeating: 0, count: parsed.payloadLength)
        guard readExactly(fd, &payload) else { return nil }
        return AgentFrame(parsed.type, channel: parsed.channel, payload: payload)
    }

}

/// A session attached through another agent process: the peer's frames of the session go to
/// Berth on Berth's channel, Berth's frames for that channel go to the peer.
final class SessionRelay: @unchecked Sendable {
    private static let peerChannel: UInt32 = 2
    private let fd: Int32
    private let channel: UInt32
    private let link: LinkOutput
    private let onEnd: () -> Void
    private let lock = Lock()
    private var ended = false
    private var started = false

    /// Connects to the peer and asks it to attach; nil when it cannot be reached.
    init?(peer path: String, owner: String, channel: UInt32, attach: AgentAttach, link: LinkOutput, onEnd: @escaping () -> Void) {
        guard let fd = SubLink.connect(path) else { return nil }
        guard SubLink.request(fd, .resumable, 1, AgentResumable(owner: owner, windowSeconds: 0, bufferBytes: 0).encoded()) != nil,
            writeAll(fd, AgentFrame(.attach, channel: Self.peerChannel, payload: attach.encoded()).encoded())
        else {
            closeDescriptor(fd)
            return nil
        }
        // From here on the peer streams the session; no read timeout.
        var none = timeval(tv_sec: 0, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, socklen_t(MemoryLayout<timeval>.size))
        self.fd = fd
        self.channel = channel
        self.link = link
        self.onEnd = onEnd
    }

    func start() {
        startThread { self.pumpFromPeer() }
    }

    private func pumpFromPeer() {
        defer { closeDescriptor(fd) }
        while let frame = SubLink.readFrame(fd), frame.channel == Self.peerChannel {
            switch frame.type {
            case .started:
                lock.locked { started = true }
                link.send(.started, channel, frame.payload)
            case .output, .errorOutput, .window:
                link.send(frame.type, channel, frame.payload)
            case .exit, .error:
                link.send(frame.type, channel, frame.payload)
                end(detach: false)
                return
            default:
                continue
            }
        }
        // The peer went away mid-session (or Berth ended the relay).
        let (wasStarted, wasEnded) = lock.locked { (started, ended) }
        if wasEnded {
        } else if wasStarted {
            link.send(.errorOutput, channel, Array("containerssh-agent: the detached session's agent process is gone\n".utf8))
            link.send(.exit, channel, AgentExit.status(255).encoded())
        } else {
            link.send(.error, channel, Array("AGENT_SESSION_NOT_FOUND: the detached session's agent process is gone".utf8))
        }
        end(detach: false)
    }

    /// Berth's frames for the session.
    func forward(_ frame: AgentFrame) throws(AgentProtocolError) {
        switch frame.type {
        case .input, .window, .eof, .resize, .signal:
            _ = lock.locked { ended ? true : writeAll(fd, AgentFrame(frame.type, channel: Self.peerChannel, payload: frame.payload).encoded()) }
        case .close:
            _ = lock.locked { ended ? true : writeAll(fd, AgentFrame(.close, channel: Self.peerChannel).encoded()) }
            end(detach: false)
        case .detach:
            end(detach: true)
        default:
            throw AgentProtocolError("AGENT_PROTOCOL_UNEXPECTED", "frame type \(frame.type) on an attached session's channel")
        }
    }

    /// Ends the relay; the peer detaches the session again when `detach` (or when the socket
    /// closes, which is the same to it).
    func end(detach: Bool) {
        let first = lock.locked { () -> Bool in
            defer { ended = true }
            if !ended && detach { _ = writeAll(fd, AgentFrame(.detach, channel: Self.peerChannel).encoded()) }
            return !ended
        }
        guard first else { return }
        _ = shutdown(fd, Int32(SHUT_RDWR))
        onEnd()
    }
}
