#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// `serve`: the data plane (docs/agent-protocol.md). One link to Berth — the first
/// authenticated connection on a unix socket (`--socket`), or stdin/stdout (`--stdio`, an exec
/// stream) — carries every program, file write and forward of the container, multiplexed.
///
/// With `--socket`, Berth authenticates with the secret it put in `BERTH_AGENT_SECRET` at
/// container creation. The agent takes the secret out of its environment (and overwrites it in
/// place, so /proc/1/environ no longer shows it) before anything else runs, and once Berth's link
/// is up the socket is unlinked and the listener closed: no later connection can reach the agent.
/// As PID 1 it reaps every orphan and exits on the `--signal`s, like `wait-signal`.
enum Serve {
    static let secretVariable = "BERTH_AGENT_SECRET"

    struct Options {
        var socketPath: String?
        var stdio = false
        var signals: [Int32] = []

        static func parse(_ arguments: [String]) throws(UsageError) -> Options {
            var options = Options()
            var cursor = ArgumentCursor(arguments)
            while let option = cursor.next() {
                switch option {
                case "--socket": options.socketPath = try cursor.value(of: option)
                case "--stdio": options.stdio = true
                case "--signal": options.signals.append(try SignalNames.number(try cursor.value(of: option)))
                default: throw UsageError("unknown serve option \(option)")
                }
            }
            guard (options.socketPath != nil) != options.stdio else { throw UsageError("serve needs exactly one of --socket PATH and --stdio") }
            if let path = options.socketPath, path.isEmpty || path.utf8.count > 107 {
                throw UsageError("--socket needs a path of 1 to 107 bytes")
            }
            return options
        }
    }

    static func run(_ arguments: [String]) -> Never {
        let options = parseOrExit { () throws(UsageError) in try Options.parse(arguments) }
        let secret = takeSecret()
        signal(SIGPIPE, SIG_IGN)
        // Blocked in every thread (threads inherit the mask), taken by sigwait below; the
        // children get a clean mask from posix_spawn.
        var awaited = sigset_t()
        sigemptyset(&awaited)
        for number in options.signals { sigaddset(&awaited, number) }
        pthread_sigmask(SIG_BLOCK, &awaited, nil)
        for number in options.signals where number != SIGKILL { signal(number, SIG_DFL) }
        let server = LinkServer()
        startThread { server.reap() }
        if !options.signals.isEmpty {
            startThread {
                var set = awaited
                var received: Int32 = 0
                while sigwait(&set, &received) != 0 {}
                server.endAll()
                exit(0)
            }
        }
        let fd: (read: Int32, write: Int32)
        if let path = options.socketPath {
            let link = acceptBerth(path, secret: secret)
            fd = (link, link)
        } else {
            fd = (STDIN_FILENO, STDOUT_FILENO)
            guard readHello(fd.read, writeTo: fd.write, secret: nil) else { exit(2) }
        }
        server.serve(read: fd.read, write: fd.write)
    }

    /// The secret from the environment, removed from it and wiped from the initial environment
    /// block (what /proc/PID/environ shows).
    private static func takeSecret() -> [UInt8]? {
        guard let value = getenv(secretVariable) else { return nil }
        let length = strlen(value)
        let secret = Array(UnsafeBufferPointer(start: UnsafeRawPointer(value).assumingMemoryBound(to: UInt8.self), count: length))
        memset(value, 0x30, length)
        unsetenv(secretVariable)
        return secret
    }

    /// Listens until a peer proves it knows the secret; then nobody else can connect.
    private static func acceptBerth(_ path: String, secret: [UInt8]?) -> Int32 {
        unlink(path)
        let listener: Int32
        do {
            listener = try Sockets.listen(protocolName: "unix", host: path, port: 0).fd
        } catch {
            AgentError.fail(1, error.message)
        }
        chmod(path, 0o600)
        while true {
            let peer = accept(listener, nil, nil)
            if peer >= 0 { _ = fcntl(peer, F_SETFD, FD_CLOEXEC) }
            if peer < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                AgentError.fail(1, "accept on \(path): \(AgentError.reason)")
            }
            if readHello(peer, writeTo: peer, secret: secret ?? []) {
                unlink(path)
                close(listener)
                return peer
            }
            close(peer)
        }
    }

    /// Reads Berth's `hello` and answers it. `secret` nil: any secret is accepted (stdio: only
    /// someone who can exec in the container reaches it, and they can run programs anyway).
    private static func readHello(_ fd: Int32, writeTo out: Int32, secret: [UInt8]?) -> Bool {
        var header = [UInt8](repeating: 0, count: AgentFrameHeader.size)
        guard readExactly(fd, &header) else { return false }
        let parsed: AgentFrameHeader
        do {
            parsed = try AgentFrameHeader(parsing: header)
        } catch {
            _ = writeAll(out, AgentFrame(.error, channel: 0, payload: Array(error.description.utf8)).encoded())
            return false
        }
        guard parsed.type == .hello, parsed.channel == 0, parsed.payloadLength <= 4096 else {
            _ = writeAll(out, AgentFrame(.error, channel: 0, payload: Array("AGENT_HELLO_EXPECTED: the first frame must be hello".utf8)).encoded())
            return false
        }
        var payload = [UInt8](repeating: 0, count: parsed.payloadLength)
        guard readExactly(fd, &payload), let hello = try? AgentHello(decoding: payload) else { return false }
        guard hello.version == AgentFrameHeader.version else {
            _ = writeAll(out, AgentFrame(.error, channel: 0, payload: Array("AGENT_VERSION_UNSUPPORTED: version \(hello.version)".utf8)).encoded())
            return false
        }
        if let secret, !constantTimeEqual(secret, hello.secret) {
            _ = writeAll(out, AgentFrame(.error, channel: 0, payload: Array("AGENT_SECRET_MISMATCH: wrong secret".utf8)).encoded())
            return false
        }
        return writeAll(out, AgentFrame(.hello, channel: 0, payload: AgentHelloReply(pid: UInt32(bitPattern: getpid())).encoded()).encoded())
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    private static func readExactly(_ fd: Int32, _ buffer: inout [UInt8]) -> Bool {
        var offset = 0
        while offset < buffer.count {
            let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + offset, $0.count - offset) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return false }
            offset += count
        }
        return true
    }
}

/// The channels of one link, the reaper, and the reader that dispatches Berth's frames.
final class LinkServer: @unchecked Sendable {
    private let monitor = Monitor()
    // Guarded by `monitor`.
    private var processes: [UInt32: LinkProcess] = [:]
    private var byPID: [pid_t: LinkProcess] = [:]
    private var forwards: [UInt32: LinkForward] = [:]
    private var spawned = 0
    /// Set by `user`: who later programs run as (nil: the agent's own user).
    private var account: GuestAccount?
    private var link: LinkOutput!

    /// Reads frames until Berth goes, then ends every program and exits.
    func serve(read readFD: Int32, write writeFD: Int32) -> Never {
        link = LinkOutput(fd: writeFD) { [unowned self] in
            self.endAll()
            exit(0)
        }
        var reader = AgentFrameReader()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 8)
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
        endAll()
        exit(0)
    }

    private func dispatch(_ frame: AgentFrame) throws(AgentProtocolError) {
        let channel = frame.channel
        switch frame.type {
        case .start:
            let start = try AgentProcessStart(decoding: frame.payload)
            try requireNew(channel)
            startProcess(channel, start)
        case .openForward:
            let credit = try AgentCredit.decode(frame.payload)
            try requireNew(channel)
            let forward = LinkForward(channel: channel, link: link, credit: credit) { [unowned self] finished in
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
        case .close:
            monitor.locked { processes[channel] }?.close()
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
        case .hello, .error, .ok, .started, .output, .errorOutput, .exit:
            throw AgentProtocolError("AGENT_PROTOCOL_UNEXPECTED", "frame type \(frame.type) is not sent by Berth")
        }
    }

    private func requireNew(_ channel: UInt32) throws(AgentProtocolError) {
        let used = monitor.locked { channel == 0 || processes[channel] != nil || forwards[channel] != nil }
        if used { throw AgentProtocolError("AGENT_PROTOCOL_CHANNEL_IN_USE", "channel \(channel) is 0 or already open") }
    }

    private func startProcess(_ channel: UInt32, _ start: AgentProcessStart) {
        // Spawning under the lock orders it before the reaper's dispatch of the same PID.
        let outcome = monitor.locked { () -> Result<LinkProcess, LinkProcess.SpawnFailure> in
            do {
                let process = try LinkProcess.spawn(channel: channel, start, as: account, link: link) { [unowned self] finished in
                    self.monitor.locked {
                        self.processes.removeValue(forKey: finished.channel)
                        self.byPID.removeValue(forKey: finished.pid)
                    }
                }
                processes[channel] = process
                byPID[process.pid] = process
                spawned += 1
                monitor.broadcast()
                return .success(process)
            } catch let failure as LinkProcess.SpawnFailure {
                return .failure(failure)
            } catch {
                return .failure(LinkProcess.SpawnFailure(message: "\(error)"))
            }
        }
        switch outcome {
        case .success(let process):
            link.send(.started, channel, AgentProcessStarted(pid: UInt32(bitPattern: process.pid), inputWindow: UInt32(LinkProcess.inputWindow)).encoded())
            process.run()
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

    /// Collects every ended child: its own programs' statuses go to them; orphans (as PID 1)
    /// are just reaped.
    func reap() {
        while true {
            let generation = monitor.locked { spawned }
            var status: Int32 = 0
            let pid = waitpid(-1, &status, 0)
            if pid > 0 {
                monitor.locked { byPID[pid] }?.exited(status)
                continue
            }
            if errno == EINTR { continue }
            // No children: sleep until the next spawn.
            monitor.locked { while spawned == generation { monitor.wait() } }
        }
    }

    /// Kills every program's process group (the link or the container is ending).
    func endAll() {
        let running = monitor.locked { Array(processes.values) }
        for process in running { process.close() }
        let open = monitor.locked { Array(forwards.values) }
        for forward in open { forward.close() }
    }
}
