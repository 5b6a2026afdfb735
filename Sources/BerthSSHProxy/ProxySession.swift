import BerthCore
import BerthSSHWire
import NIOCore

/// One client session relayed to an upstream session channel. Each request goes up as the
/// client sent it (type and type-specific bytes) and the upstream's answer comes back; output,
/// EOF and the upstream's requests (exit-status, exit-signal) flow down in order.
actor ProxySession: SessionChannelHandler {
    private let downstream: any SessionChannel
    private let upstream: UpstreamChannel
    /// Where the openers for the upstream's x11 and auth-agent channels are kept.
    private let connection: UpstreamConnection
    private var input: Task<Void, Never>?
    private var output: Task<Void, Never>?

    init(downstream: any SessionChannel, upstream: UpstreamChannel, connection: UpstreamConnection) {
        self.downstream = downstream
        self.upstream = upstream
        self.connection = connection
        if let output = downstream.output { upstream.useFastOutput(output) }
        let channel = downstream
        // Servers often send EOF before the exit status; the client is told in the order
        // docs/ssh-engine.md gives (exit status, then EOF, then close), so the EOF waits for the
        // exit report.
        output = Task {
            var eofPending = false
            for await event in upstream.events {
                switch event {
                case .data(let bytes):
                    try? await channel.writeStdout(bytes)
                    upstream.consumed(bytes.readableBytes)
                case .extendedData(let bytes, _):
                    try? await channel.writeStderr(bytes)
                    upstream.consumed(bytes.readableBytes)
                case .request(let type, let payload):
                    guard await Self.relayDown(type: type, payload: payload, to: channel) else { continue }
                    if eofPending {
                        await channel.closeWrite()
                        eofPending = false
                    }
                case .eof:
                    eofPending = true
                case .closed:
                    if eofPending { await channel.closeWrite() }
                    await channel.close()
                    return
                }
            }
            await channel.close()
        }
    }

    /// The upstream's session requests the client is told about; true for an exit report.
    private static func relayDown(type: String, payload: ByteBuffer, to channel: any SessionChannel) async -> Bool {
        var data = payload
        switch type {
        case "exit-status":
            guard let status = data.readSSHUInt32() else { return false }
            await channel.sendExitStatus(status)
            return true
        case "exit-signal":
            guard let name = data.readSSHText(), let core = data.readSSHBool(), let message = data.readSSHText() else { return false }
            await channel.sendExitSignal(name: name, coreDumped: core, message: message)
            return true
        default:
            // eow@openssh.com (EOF follows anyway), keepalive@openssh.com (already answered).
            return false
        }
    }

    /// Sends a request upstream and waits for its verdict.
    private func ask(_ type: String, _ payload: ByteBuffer = ByteBuffer(), what: String) async throws {
        guard await upstream.request(type, wantReply: true, payload: payload) else {
            throw RequestRefused("SSHPROXY_REQUEST_REFUSED", "the upstream server refused \(what)")
        }
    }

    private func tell(_ type: String, _ payload: ByteBuffer) async {
        _ = await upstream.request(type, wantReply: false, payload: payload)
    }

    func onEnv(requestID: UInt64, name: String, value: String) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(name)
        payload.writeSSHText(value)
        try await ask("env", payload, what: "env \(name)")
    }

    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(pty.term)
        payload.writeSSHUInt32(pty.columns)
        payload.writeSSHUInt32(pty.rows)
        payload.writeSSHUInt32(pty.widthPixels)
        payload.writeSSHUInt32(pty.heightPixels)
        // RFC 4254 §8: opcode/uint32 pairs ending with TTY_OP_END.
        var modes = ByteBuffer()
        for (opcode, value) in pty.modes.sorted(by: { $0.key < $1.key }) where opcode != 0 && opcode < 160 {
            modes.writeSSHUInt8(opcode)
            modes.writeSSHUInt32(value)
        }
        modes.writeSSHUInt8(0)
        payload.writeSSHString(modes)
        try await ask("pty-req", payload, what: "a terminal")
    }

    func onShell(requestID: UInt64) async throws {
        try await ask("shell", what: "a shell")
        startInput()
    }

    func onExec(requestID: UInt64, command: String) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(command)
        try await ask("exec", payload, what: "the command")
        startInput()
    }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(name)
        try await ask("subsystem", payload, what: "subsystem \(name)")
        startInput()
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        var payload = ByteBuffer()
        payload.writeSSHUInt32(size.columns)
        payload.writeSSHUInt32(size.rows)
        payload.writeSSHUInt32(size.widthPixels)
        payload.writeSSHUInt32(size.heightPixels)
        await tell("window-change", payload)
    }

    func onSignal(requestID: UInt64, signal: String) async throws {
        var payload = ByteBuffer()
        payload.writeSSHText(signal)
        await tell("signal", payload)
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    func onBreak(requestID: UInt64, milliseconds: UInt32) async throws {
        var payload = ByteBuffer()
        payload.writeSSHUInt32(milliseconds)
        try await ask("break", payload, what: "the break")
    }

    /// The cookie goes up as the client sent it (OpenSSH's stand-in): the client puts the real
    /// one in when the X client's connection comes back through the proxy.
    func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws {
        var payload = ByteBuffer()
        payload.writeSSHBool(request.singleConnection)
        payload.writeSSHText(request.authProtocol)
        payload.writeSSHText(request.cookie)
        payload.writeSSHUInt32(request.screen)
        try await ask("x11-req", payload, what: "X11 forwarding")
        connection.clientOpeners.withLockedValue { $0.x11 = opener }
    }

    func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws {
        try await ask("auth-agent-req@openssh.com", what: "agent forwarding")
        connection.clientOpeners.withLockedValue { $0.agent = opener }
    }

    func onClose() async {
        input?.cancel()
        upstream.close()
    }

    /// Client input goes up once the program runs; its EOF becomes the upstream's EOF.
    private func startInput() {
        guard input == nil else { return }
        let stdin = downstream.stdin
        let upstream = self.upstream
        input = Task {
            for await chunk in stdin {
                do { try await upstream.write(chunk) } catch { return }
            }
            upstream.sendEOF()
        }
    }
}
