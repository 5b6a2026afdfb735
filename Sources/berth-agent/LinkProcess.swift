#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// One program started over the link: its pipes (or terminal), the threads that move its bytes,
/// and the credit that bounds them. Output is read only while Berth has granted credit, so a slow
/// client stops the program's writes instead of growing memory; stdin is queued only up to the
/// credit the agent granted Berth.
final class LinkProcess: FlowControlledChannel, @unchecked Sendable {
    static let inputWindow = 256 * 1024
    static let readSize = 64 * 1024

    let pid: pid_t
    let tty: Bool
    let inputFD: Int32
    let monitor = Monitor()
    let flow: ChannelFlow
    /// Set for a terminal program of a `resumable` link: it outlives its link
    /// (LinkProcess+Resume.swift).
    let resume: AgentResumable?
    let command: String

    // Guarded by `monitor`.
    /// The link and channel the program is attached to; nil while detached.
    var channel: UInt32
    var link: LinkOutput?
    var onFinished: ((LinkProcess) -> Void)?
    var openOutputs: Int
    var status: Int32?
    var finished = false
    var resumeState = ResumeState()

    private init(
        channel: UInt32, pid: pid_t, tty: Bool, link: LinkOutput, inputFD: Int32, outputs: Int, credit: UInt32,
        resume: AgentResumable?, command: String, onFinished: @escaping (LinkProcess) -> Void
    ) {
        self.channel = channel
        self.pid = pid
        self.tty = tty
        self.link = link
        self.inputFD = inputFD
        self.openOutputs = outputs
        flow = ChannelFlow(monitor: monitor, inputWindow: Self.inputWindow, outputCredit: credit)
        self.resume = resume
        self.command = command
        self.onFinished = onFinished
        resumeState.attached = true
    }

    struct SpawnFailure: Error { let message: String }

    /// Starts the program; the caller holds the lock that orders spawns before the reaper's
    /// dispatch, so an early exit finds the process registered.
    static func spawn(
        channel: UInt32, _ start: AgentProcessStart, as account: GuestAccount?, link: LinkOutput,
        resume: AgentResumable?, onFinished: @escaping (LinkProcess) -> Void
    ) throws(SpawnFailure) -> LinkProcess {
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A new session like sshd gives every session (and the terminal becomes its controlling
        // terminal when opened below); signals back to defaults, none blocked.
        let setsid: Int32 = 0x80  // POSIX_SPAWN_SETSID (glibc and musl), not exported to Swift
        posix_spawnattr_setflags(&attributes, Int16(setsid | Int32(POSIX_SPAWN_SETSIGMASK) | Int32(POSIX_SPAWN_SETSIGDEF)))
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigemptyset(&all)
        for number in 1..<32 where number != SIGKILL && number != SIGSTOP { sigaddset(&all, Int32(number)) }
        posix_spawnattr_setsigdefault(&attributes, &all)

        var parentEnds: [Int32] = []
        var childEnds: [Int32] = []
        func cleanUp() {
            for fd in parentEnds + childEnds { closeDescriptor(fd) }
        }
        let inputFD: Int32
        var outputFDs: [(Int32, AgentFrameType)] = []
        if let terminal = start.terminal {
            // posix_openpt, unlockpt and ptsname by hand: the Glibc module does not export them.
            // grantpt has nothing to do on devpts.
            let master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
            guard master >= 0 else { throw SpawnFailure(message: "cannot open a terminal: \(AgentError.reason)") }
            parentEnds.append(master)
            var unlock: Int32 = 0
            var number: UInt32 = 0
            guard ioctl(master, Self.setLock, &unlock) == 0, ioctl(master, Self.getNumber, &number) == 0 else {
                let reason = AgentError.reason
                cleanUp()
                throw SpawnFailure(message: "cannot set up a terminal: \(reason)")
            }
            let name = "/dev/pts/\(number)"
            // As sshd does: the login user owns its terminal (tty, mesg and programs that reopen
            // their terminal by name need it).
            if let account, account.uid != geteuid() { _ = chown(name, account.uid, account.gid) }
            Self.resize(master, terminal)
            posix_spawn_file_actions_addopen(&fileActions, 0, name, O_RDWR, 0)
            posix_spawn_file_actions_adddup2(&fileActions, 0, 1)
            posix_spawn_file_actions_adddup2(&fileActions, 0, 2)
            inputFD = master
            let reading = fcntl(master, F_DUPFD_CLOEXEC, 0)
            guard reading >= 0 else {
                cleanUp()
                throw SpawnFailure(message: "cannot duplicate the terminal: \(AgentError.reason)")
            }
            parentEnds.append(reading)
            outputFDs = [(reading, .output)]
        } else {
            var pipes: [(read: Int32, write: Int32)] = []
            for _ in 0..<3 {
                // Spawns are serialised (the caller's lock), so no other spawn can inherit these
                // between pipe() and FD_CLOEXEC.
                var fds: [Int32] = [-1, -1]
                guard pipe(&fds) == 0 else {
                    let reason = AgentError.reason
                    cleanUp()
                    throw SpawnFailure(message: "cannot create pipes: \(reason)")
                }
                _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
                pipes.append((fds[0], fds[1]))
            }
            parentEnds += [pipes[0].write, pipes[1].read, pipes[2].read]
            childEnds += [pipes[0].read, pipes[1].write, pipes[2].write]
            posix_spawn_file_actions_adddup2(&fileActions, pipes[0].read, 0)
            posix_spawn_file_actions_adddup2(&fileActions, pipes[1].write, 1)
            posix_spawn_file_actions_adddup2(&fileActions, pipes[2].write, 2)
            inputFD = pipes[0].write
            outputFDs = [(pipes[1].read, .output), (pipes[2].read, .errorOutput)]
        }

        // Another account: the agent itself (`console --user`) drops to it and then becomes the
        // program, since posix_spawn cannot change ids. Its variables come before the start's, so
        // the operator's environment can still set them.
        var program = start.argv
        var accountVariables: [String] = []
        if let account {
            accountVariables = ["HOME=\(account.home)", "USER=\(account.name)", "LOGNAME=\(account.name)", "SHELL=\(account.shell)"]
            if account.uid != geteuid() {
                guard let agent = Self.agentPath else { cleanUp(); throw SpawnFailure(message: "cannot find the agent's own binary to change user") }
                program = [agent, "console", "--user", account.name, "--"] + start.argv
            }
        }
        let environment = Self.environment(adding: accountVariables + start.environment)
        var argv: [UnsafeMutablePointer<CChar>?] = program.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, program[0], &fileActions, &attributes, &argv, &envp)
        for fd in childEnds { closeDescriptor(fd) }
        childEnds = []
        guard result == 0 else {
            cleanUp()
            throw SpawnFailure(message: "cannot run \(start.argv[0]): \(String(cString: strerror(result)))")
        }
        let process = LinkProcess(
            channel: channel, pid: pid, tty: start.terminal != nil, link: link, inputFD: inputFD,
            outputs: outputFDs.count, credit: start.outputWindow,
            resume: start.terminal == nil ? nil : resume, command: start.argv.joined(separator: " "), onFinished: onFinished)
        process.outputFDs = outputFDs
        return process
    }

    var outputFDs: [(Int32, AgentFrameType)] = []
    /// Direct pipes offered to Berth and not yet answered (LinkProcess+Direct.swift).
    var directOffered = false

    /// Starts moving bytes; called after `started` has gone out, so no output precedes it.
    /// `input` false: Berth holds the stdin pipe itself (LinkProcess+Direct.swift).
    func run(input: Bool = true) {
        for (fd, type) in outputFDs {
            if resume != nil {
                startThread { self.pumpResumable(fd) }
            } else {
                startThread { self.pumpOutput(fd, type) }
            }
        }
        if input { startThread { self.pumpInput() } }
    }

    /// The agent's environment with `extra` (NAME=VALUE) replacing same-named variables; the last
    /// entry for a name wins.
    private static func environment(adding extra: [String]) -> [String] {
        func name(_ entry: String) -> Substring { entry.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? Substring(entry) }
        var added: [Substring: String] = [:]
        var order: [Substring] = []
        for entry in extra {
            let key = name(entry)
            if added.updateValue(entry, forKey: key) == nil { order.append(key) }
        }
        var entries: [String] = []
        let inherited: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
        if let inherited {
            var index = 0
            while let entry = inherited[index] {
                let text = String(cString: entry)
                if added[name(text)] == nil { entries.append(text) }
                index += 1
            }
        }
        return entries + order.compactMap { added[$0] }
    }

    /// This binary, for `console --user`; read once, before any program could replace it.
    static let agentPath: String? = {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }()

    /// TIOCSPTLCK and TIOCGPTN (asm-generic ioctl numbers), which Swift cannot import.
    private static let setLock = UInt(0x4004_5431)
    private static let getNumber = UInt(0x8004_5430)

    static func resize(_ fd: Int32, _ size: AgentWindowSize) {
        var window = winsize(
            ws_row: UInt16(clamping: size.rows), ws_col: UInt16(clamping: size.columns),
            ws_xpixel: UInt16(clamping: size.widthPixels), ws_ypixel: UInt16(clamping: size.heightPixels))
        _ = ioctl(fd, UInt(TIOCSWINSZ), &window)
    }

    // MARK: Frames from Berth (the link reader thread)

    func addCredit(_ bytes: UInt32) {
        monitor.locked { flow.addCredit(bytes) }
        // The output thread may be blocked reading the terminal while bytes wait for this credit.
        if resume != nil { drainPending() }
    }

    func resize(_ size: AgentWindowSize) {
        guard tty else { return }
        monitor.locked { if !finished { Self.resize(inputFD, size) } }
    }

    func signal(_ number: Int32) {
        monitor.locked { if status == nil { _ = kill(pid, number) } }
    }

    /// Berth is done with the channel: a running program and its process group are killed.
    func close() {
        let wasFinished = monitor.locked { () -> Bool in
            defer {
                finished = true
                monitor.broadcast()
            }
            if status == nil {
                _ = kill(-pid, SIGKILL)
                _ = kill(pid, SIGKILL)
            }
            return finished
        }
        dropUnansweredPipes()
        if !wasFinished { finishedCallbacks() }
    }

    /// The link's and the process table's bookkeeping, once.
    func finishedCallbacks() {
        let callback = monitor.locked { () -> ((LinkProcess) -> Void)? in
            defer { onFinished = nil }
            return onFinished
        }
        callback?(self)
        ProgramTable.shared.finished(self)
    }

    /// The link and channel to send on now (nil while detached).
    var target: (LinkOutput, UInt32)? {
        monitor.locked { link.map { ($0, channel) } }
    }

    /// From the reaper.
    func exited(_ status: Int32) {
        monitor.locked { self.status = status }
        finishIfDone()
    }

    // MARK: Threads

    private func pumpOutput(_ fd: Int32, _ type: AgentFrameType) {
        let size = AgentFrameHeader.size + Self.readSize
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 8)
        defer { buffer.deallocate() }
        while true {
            let allowed = monitor.locked { flow.awaitCredit(limit: Self.readSize, unless: { finished }) }
            guard allowed > 0 else { break }
            let count = read(fd, buffer.baseAddress! + AgentFrameHeader.size, allowed)
            if count < 0 && errno == EINTR { continue }
            // A terminal's master reports EIO once every holder of the terminal has closed it.
            guard count > 0 else { break }
            let stillOpen = monitor.locked { () -> Bool in
                flow.outputCredit -= count
                return !finished
            }
            guard stillOpen, let (link, channel) = target else { break }
            link.send(type, channel, frame: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<(AgentFrameHeader.size + count)]))
        }
        closeDescriptor(fd)
        monitor.locked { openOutputs -= 1 }
        finishIfDone()
    }

    private func pumpInput() {
        var broken = false
        while true {
            let taken = monitor.locked { flow.nextInput(unless: { finished }) }
            guard let (chunk, drops) = taken else { break }
            // A program that stopped reading (closed stdin) drops the rest; the credit still
            // goes back so Berth's side never stalls. Not to a link that came after a detach:
            // the chunk was the old link's.
            if !broken && !writeAll(inputFD, chunk) { broken = true }
            let creditTo = monitor.locked { () -> (LinkOutput, UInt32)? in
                guard flow.inputPassedOn(chunk.count, drops: drops), !finished else { return nil }
                return link.map { ($0, channel) }
            }
            if let (link, channel) = creditTo { link.send(.window, channel, AgentCredit.encoded(UInt32(chunk.count))) }
        }
        // A terminal has no EOF to pass on; its master closes when the channel ends.
        let ended = monitor.locked { finished }
        if !tty || ended { closeDescriptor(inputFD) }
        if tty && !ended {
            monitor.locked { while !finished { monitor.wait() } }
            closeDescriptor(inputFD)
        }
    }

    /// `exit` goes out once the program has ended and all its output has been sent.
    func finishIfDone() {
        let exit = monitor.locked { () -> (AgentExit, LinkOutput?, UInt32)? in
            guard !finished, openOutputs == 0, let status else { return nil }
            finished = true
            monitor.broadcast()
            return (Self.describe(status), link, channel)
        }
        guard let (exit, link, channel) = exit else { return }
        link?.send(.exit, channel, exit.encoded())
        finishedCallbacks()
    }

    func outputClosed() {
        monitor.locked { openOutputs -= 1 }
        finishIfDone()
    }

    static func describe(_ status: Int32) -> AgentExit {
        let low = status & 0x7F
        if low == 0 { return .status(UInt32((status >> 8) & 0xFF)) }
        let name = SignalNames.numbers.first { $0.value == low }?.key ?? "SIG@openssh.com"
        return .signal(name: name, coreDumped: status & 0x80 != 0)
    }
}
