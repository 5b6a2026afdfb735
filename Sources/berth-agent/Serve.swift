#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthAgentProtocol

/// `serve`: the data plane (docs/agent-protocol.md). One link to Berth — the first
/// authenticated connection on a unix socket (`--socket`) or a TCP port (`--listen`, a pod's IP
/// when Berth runs in the cluster), or stdin/stdout (`--stdio`, an exec stream) — carries every
/// program, file write and forward of the container, multiplexed.
///
/// With `--socket` and `--listen`, Berth authenticates with the secret it put in
/// `BERTH_AGENT_SECRET` at container creation (`--listen` refuses to run without one). The
/// agent takes the secret out of its environment (and overwrites it in place, so
/// /proc/1/environ no longer shows it) before anything else runs, and once Berth's link is up
/// the socket is unlinked and the listener closed: no later connection can reach the agent.
/// As PID 1 it reaps every orphan and exits on the `--signal`s, like `wait-signal`.
enum Serve {
    static let secretVariable = AgentHello.secretVariable

    struct Options {
        var socketPath: String?
        var listen: (host: String, port: UInt64)?
        var stdio = false
        var signals: [Int32] = []
        var resumeDirectory: String?

        static func parse(_ arguments: [String]) throws(UsageError) -> Options {
            var options = Options()
            var cursor = ArgumentCursor(arguments)
            while let option = cursor.next() {
                switch option {
                case "--socket": options.socketPath = try cursor.value(of: option)
                case "--stdio": options.stdio = true
                case "--listen": options.listen = try parseAddress(try cursor.value(of: option))
                case "--resume-dir": options.resumeDirectory = try cursor.value(of: option)
                case "--signal": options.signals.append(try SignalNames.number(try cursor.value(of: option)))
                default: throw UsageError("unknown serve option \(option)")
                }
            }
            let links = [options.socketPath != nil, options.listen != nil, options.stdio].filter { $0 }.count
            guard links == 1 else { throw UsageError("serve needs exactly one of --socket PATH, --listen HOST:PORT and --stdio") }
            if let path = options.socketPath, path.isEmpty || path.utf8.count > 107 {
                throw UsageError("--socket needs a path of 1 to 107 bytes")
            }
            return options
        }

        /// HOST:PORT, [IPv6]:PORT, or :PORT for every address.
        static func parseAddress(_ text: String) throws(UsageError) -> (host: String, port: UInt64) {
            guard let colon = text.lastIndex(of: ":"), let port = UInt64(text[text.index(after: colon)...]), (1...65535).contains(port) else {
                throw UsageError("--listen needs HOST:PORT with a port of 1 to 65535, not \(text)")
            }
            var host = String(text[..<colon])
            if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            return (host, port)
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
        ResumeDirectory.explicit = options.resumeDirectory
        let server = LinkServer(subLink: false)
        startThread { ProgramTable.shared.reap() }
        if !options.signals.isEmpty {
            startThread {
                var set = awaited
                var received: Int32 = 0
                while sigwait(&set, &received) != 0 {}
                server.endAll()
                ProgramTable.shared.killAll()
                exit(0)
            }
        }
        let fd: (read: Int32, write: Int32)
        if let path = options.socketPath {
            let link = acceptBerth(path, secret: secret)
            fd = (link, link)
        } else if let address = options.listen {
            guard let secret, !secret.isEmpty else {
                AgentError.fail(1, "serve --listen needs the secret in \(secretVariable): a network port without it would take anyone")
            }
            let link = TCPLinkListener(secret: secret).accept(address.host, address.port)
            fd = (link, link)
        } else {
            fd = (STDIN_FILENO, STDOUT_FILENO)
            guard readHello(fd.read, writeTo: fd.write, secret: nil) else { exit(2) }
        }
        server.serve(read: fd.read, write: fd.write)
        // Detached sessions keep this process alive (it serves them to later links) until the
        // last one ends.
        ProgramTable.shared.linkEnded()
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
    static func readHello(_ fd: Int32, writeTo out: Int32, secret: [UInt8]?) -> Bool {
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
        // The features go first: by the time Berth reads the hello reply it knows them, and a
        // Berth that does not know the frame ignores it (docs/agent-protocol.md, "Direct pipes").
        return writeAll(out, AgentFrame(.ok, channel: 0, payload: AgentFeatures.directPipes.encoded()).encoded())
            && writeAll(out, AgentFrame(.hello, channel: 0, payload: AgentHelloReply(pid: UInt32(bitPattern: getpid())).encoded()).encoded())
    }

    private static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

}
