#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// The channels of one link and the reader that dispatches its frames: Berth's link, or (a
/// sub-link) another agent process of the container attaching one of this process's detached
/// sessions for its own link (ResumeHolder.swift).
final class LinkServer: @unchecked Sendable {
    private let monitor = Monitor()
    /// A sub-link sees only this process's sessions and never relays further.
    let subLink: Bool
    // Guarded by `monitor`.
    private var processes: [UInt32: LinkProcess] = [:]
    private var forwards: [UInt32: LinkForward] = [:]
    private var relays: [UInt32: SessionRelay] = [:]
    /// Set by `user`: who later programs run as (nil: the agent's own user).
    private var account: GuestAccount?
    /// Set by `resumable`: whose link this is, and how its terminal programs outlive it.
    private var resume: AgentResumable?
    private var ended = false
    private var link: LinkOutput!

    init(subLink: Bool) { self.subLink = subLink }

    /// Reads frames until the peer goes; then detaches what may be resumed and ends the rest.
    func serve(read readFD: Int32, write writeFD: Int32) {
        // Weak, not unowned, in this and the callbacks below: a resumable program and its link
        // output outlive the LinkServer that started them, and may call back after it is gone.
        link = LinkOutput(fd: writeFD) { [weak self] in
            // The peer is gone: wake the reader too (a socket; an exec stream ends both ways).
            _ = shutdown(readFD, Int32(SHUT_RDWR))
            self?.linkEnded()
        }
        var reader = AgentFrameReader()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let count = read(readFD, buffer.baseAddress, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            do {
                for frame in try reader.feed(UnsafeRawBufferPointer(rebasing: buffer[0..<count])) {
                    try dispatch(frame)
                }
            } catch {
                link.send(.error, 0, Array(error.description.utf8))
                break
            }
        }
        linkEnded()
    }

    /// Once: resumable programs are detached, every other program and forward ends.
    private func linkEnded() {
        let first = monitor.locked { () -> Bool in
            defer { ended = true }
            return !ended
        }
        guard first else { return }
        let (programs, open, relayed) = monitor.locked { (Array(processes.values), Array(forwards.values), Array(relays.values)) }
        monitor.locked { processes = [:] }
        for process in programs {
            if process.resume != nil { process.detach() } else { process.close() }
        }
        for forward in open { forward.close() }
        for relay in relayed { relay.end(detach: true) }
    }

    private func dispatch(_ frame: AgentFrame) throws(AgentProtocolError) {
        let channel = frame.channel
        if let relay = monitor.locked({ relays[channel] }) {
            try relay.forward(frame)
            return
        }
        switch frame.type {
        case .start:
            let start = try AgentProcessStart(decoding: frame.payload)
            try requireNew(channel)
            startProcess(channel, start)
        case .openForward:
            let credit = try AgentCredit.decode(frame.payload)
            try requireNew(channel)
            // Unix sockets are dialled and bound as the login account, once Berth has named one.
            let owner = monitor.locked { account }.map { SocketOwner(uid: $0.uid, gid: $0.gid) }
            let forward = LinkForward(channel: channel, link: link, credit: credit, socketOwner: owner) { [weak self] finished in
                guard let self else { return }
                self.monitor.locked { _ = self.forwards.removeValue(forKey: finished.channel) }
            }
            monitor.locked { forwards[channel] = forward }
            forward.start()
        case .input:
            do {
                if let process = monitor.locked({ processes[channel] }) {
                    try process.enqueue(frame.payload)
                } else if let forward = monitor.locked({ forwards[channel] }) {
                    try forward.enqueue(frame.payload)
                }
            } catch {
                throw AgentProtocolError("AGENT_PROTOCOL_WINDOW_EXCEEDED", "channel \(channel) sent more input than its window")
            }
        case .eof:
            if let process = monitor.locked({ processes[channel] }) { process.endOfInput() }
            if let forward = monitor.locked({ forwards[channel] }) { forward.endOfInput() }
        case .window:
            let credit = try AgentCredit.decode(frame.payload)
            if let process = monitor.locked({ processes[channel] }) { process.addCredit(credit) }
            if let forward = monitor.locked({ forwards[channel] }) { forward.addCredit(credit) }
        case .resize:
            let size = try AgentWindowSize(decoding: frame.payload)
            monitor.locked { processes[channel] }?.resize(size)
        case .signal:
            let name = String(decoding: frame.payload, as: UTF8.self)
            guard let canonical = AgentSignals.canonical(name), let number = SignalNames.numbers[canonical] else {
                throw AgentProtocolError("AGENT_PROTOCOL_BAD_SIGNAL", "unknown signal \(name)")
            }
            monitor.locked { processes[channel] }?.signal(number)
        case .direct:
            let answer = try AgentDirectAnswer(decoding: frame.payload)
            monitor.locked { processes[channel] }?.answerDirectPipes(answer)
        case .close:
            monitor.locked { processes[channel] }?.close()
            monitor.locked { forwards[channel] }?.close()
        case .detach:
            // A program that cannot be resumed ends as with `close`.
            if let process = monitor.locked({ processes.removeValue(forKey: channel) }) {
                if process.resume != nil { process.detach() } else { process.close() }
            }
            monitor.locked { forwards[channel] }?.close()
        case .user:
            let request = try AgentUser(decoding: frame.payload)
            do {
                let account = try GuestAccount.ensure(request)
                monitor.locked { self.account = account }
                link.send(.ok, channel, AgentUserReply(uid: account.uid, gid: account.gid, home: account.home).encoded())
            } catch {
                link.send(.error, channel, Array("AGENT_USER_FAILED: \(error.message)".utf8))
            }
        case .writeFile:
            let request = try AgentWriteFile(decoding: frame.payload)
            if let problem = Self.write(request, owner: monitor.locked { account }) {
                link.send(.error, channel, Array(problem.utf8))
            } else {
                link.send(.ok, channel)
            }
        case .resumable:
            let request = try AgentResumable(decoding: frame.payload)
            // The owner is fixed for the link's life: a link cannot become another user's.
            let accepted = monitor.locked { () -> Bool in
                if let resume, resume.owner != request.owner { return false }
                resume = request
                return true
            }
            if accepted {
                link.send(.ok, channel)
            } else {
                link.send(.error, channel, Array("AGENT_RESUME_OWNER_FIXED: the link already belongs to another user".utf8))
            }
        case .sessions:
            guard let owner = monitor.locked({ resume?.owner }) else {
                link.send(.error, channel, Array("AGENT_RESUME_NOT_ENABLED: send resumable first".utf8))
                return
            }
            var list = ProgramTable.shared.detachedPrograms(of: owner).map { process in
                let times = process.detachedTimes()
                return AgentDetachedSession(pid: UInt32(process.pid), detachedSeconds: times.since, remainingSeconds: times.left, command: process.command)
            }
            if !subLink { list += ResumeHolder.shared.peerSessions(of: owner).flatMap(\.sessions) }
            // Longest detached first, whichever agent process holds them, so a menu keeps its order.
            list.sort { ($0.detachedSeconds, UInt32.max - $0.pid) > ($1.detachedSeconds, UInt32.max - $1.pid) }
            link.send(.ok, channel, AgentSessionList(list).encoded())
        case .attach:
            let request = try AgentAttach(decoding: frame.payload)
            try requireNew(channel)
            attach(channel, request)
        case .hello, .error, .ok, .started, .output, .errorOutput, .exit:
            throw AgentProtocolError("AGENT_PROTOCOL_UNEXPECTED", "frame type \(frame.type) is not sent by Berth")
        }
    }

    private func requireNew(_ channel: UInt32) throws(AgentProtocolError) {
        let used = monitor.locked { channel == 0 || processes[channel] != nil || forwards[channel] != nil || relays[channel] != nil }
        if used { throw AgentProtocolError("AGENT_PROTOCOL_CHANNEL_IN_USE", "channel \(channel) is 0 or already open") }
    }

    /// A detached session of this link's user: this process's own, or (Berth's link only) another
    /// agent process's, relayed.
    private func attach(_ channel: UInt32, _ request: AgentAttach) {
        guard let owner = monitor.locked({ resume?.owner }) else {
            link.send(.error, channel, Array("AGENT_RESUME_NOT_ENABLED: send resumable first".utf8))
            return
        }
        let pid = pid_t(bitPattern: request.pid)
        if let process = ProgramTable.shared.program(pid), process.resume?.owner == owner,
            process.claim(
                link: link, channel: channel, attach: request,
                onFinished: { [weak self] finished in
                    guard let self else { return }
                    self.monitor.locked { self.forget(finished, channel) }
                })
        {
            monitor.locked { processes[channel] = process }
            link.send(.started, channel, AgentProcessStarted(pid: UInt32(pid), inputWindow: UInt32(LinkProcess.inputWindow)).encoded())
            process.resumeOutput()
            return
        }
        if !subLink, let peer = ResumeHolder.shared.peerSessions(of: owner).first(where: { $0.sessions.contains { $0.pid == request.pid } }),
            let relay = SessionRelay(
                peer: peer.path, owner: owner, channel: channel, attach: request, link: link,
                onEnd: { [weak self] in
                    guard let self else { return }
                    self.monitor.locked { _ = self.relays.removeValue(forKey: channel) }
                })
        {
            monitor.locked { relays[channel] = relay }
            relay.start()
            return
        }
        link.send(.error, channel, Array("AGENT_SESSION_NOT_FOUND: no detached session \(request.pid) of this user".utf8))
    }

    private func forget(_ process: LinkProcess, _ channel: UInt32) {
        if processes[channel] === process { processes.removeValue(forKey: channel) }
    }

    private func startProcess(_ channel: UInt32, _ start: AgentProcessStart) {
        let account = monitor.locked { () -> GuestAccount? in self.account }
        let resume = monitor.locked { () -> AgentResumable? in self.resume }
        let link: LinkOutput = self.link
        let outcome: Result<LinkProcess, LinkProcess.SpawnFailure>
        do {
            let process = try ProgramTable.shared.spawn { () throws -> LinkProcess in
                try LinkProcess.spawn(channel: channel, start, as: account, link: link, resume: resume) { [weak self] finished in
                    guard let self else { return }
                    self.monitor.locked { self.forget(finished, channel) }
                }
            }
            monitor.locked { processes[channel] = process }
            outcome = .success(process)
        } catch let failure as LinkProcess.SpawnFailure {
            outcome = .failure(failure)
        } catch {
            outcome = .failure(LinkProcess.SpawnFailure(message: "\(error)"))
        }
        switch outcome {
        case .success(let process):
            let direct = start.directPipes ? process.offerDirectPipes() : nil
            link.send(.started, channel, AgentProcessStarted(pid: UInt32(bitPattern: process.pid), inputWindow: UInt32(LinkProcess.inputWindow), direct: direct).encoded())
            // With direct pipes offered, nothing moves until Berth says whether it took them.
            if direct == nil { process.run() }
        case .failure(let failure):
            // Like `console`: the reason on stderr and exit status 127, so the client sees what a
            // shell would show.
            link.send(.started, channel, AgentProcessStarted(pid: 0, inputWindow: 0).encoded())
            link.send(.errorOutput, channel, Array("containerssh-agent: \(failure.message)\n".utf8))
            link.send(.exit, channel, AgentExit.status(127).encoded())
        }
    }

    /// Files Berth writes for the user (the webhook's `files`) belong to the login account, so
    /// its programs can read a mode 0600 file.
    private static func write(_ request: AgentWriteFile, owner: GuestAccount?) -> String? {
        let fd: Int32
        switch FileTarget.openForWriting(request.path, mode: mode_t(request.mode)) {
        case .success(let opened): fd = opened
        case .failure(let error): return error.message
        }
        defer { close(fd) }
        if let owner, owner.uid != geteuid(), fchown(fd, owner.uid, owner.gid) != 0 {
            return "cannot give \(request.path) to \(owner.name): \(AgentError.reason)"
        }
        guard writeAll(fd, request.contents) else { return "cannot write \(request.path): \(AgentError.reason)" }
        return nil
    }

    /// Kills every program's process group and closes every forward (the container is ending).
    func endAll() {
        let running = monitor.locked { Array(processes.values) }
        for process in running { process.close() }
        let open = monitor.locked { Array(forwards.values) }
        for forward in open { forward.close() }
    }
}
