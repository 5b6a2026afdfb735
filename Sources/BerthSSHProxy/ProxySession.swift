import BerthCore
import Logging
import NIOCore
import NIOSSH

/// One client session relayed to an upstream session channel: every request goes up and the
/// upstream's answer comes back; output, EOF, exit status and exit signal flow down in order.
actor ProxySession: SessionChannelHandler {
    private let downstream: any SessionChannel
    private let upstream: Channel
    private let relay: NIOLoopBound<UpstreamRelay>
    private var input: Task<Void, Never>?
    private var output: Task<Void, Never>?

    init(downstream: any SessionChannel, upstream: Channel, relay: NIOLoopBound<UpstreamRelay>, events: UpstreamRelay.Events) {
        self.downstream = downstream
        self.upstream = upstream
        self.relay = relay
        let channel = downstream
        // Servers often send EOF before the exit status; the client is told in the order docs/ssh-engine.md gives
        // (exit status, then EOF, then close), so the EOF waits for the exit report.
        output = Task {
            var eofPending = false
            for await event in events {
                switch event {
                case .stdout(let bytes): try? await channel.writeStdout(bytes)
                case .stderr(let bytes): try? await channel.writeStderr(bytes)
                case .exitStatus(let status):
                    await channel.sendExitStatus(status)
                    if eofPending { await channel.closeWrite(); eofPending = false }
                case .exitSignal(let name, let core, let message):
                    await channel.sendExitSignal(name: name, coreDumped: core, message: message)
                    if eofPending { await channel.closeWrite(); eofPending = false }
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

    /// Sends a request upstream and waits for its verdict.
    private func ask(_ request: any Sendable, what: String) async throws {
        let reply = upstream.eventLoop.makePromise(of: Bool.self)
        let relay = self.relay
        upstream.eventLoop.execute { relay.value.send(request, reply: reply) }
        guard try await reply.futureResult.get() else {
            throw RequestRefused("SSHPROXY_REQUEST_REFUSED", "the upstream server refused \(what)")
        }
    }

    private func tell(_ request: any Sendable) {
        upstream.triggerUserOutboundEvent(request, promise: nil)
    }

    func onEnv(requestID: UInt64, name: String, value: String) async throws {
        try await ask(SSHChannelRequestEvent.EnvironmentRequest(wantReply: true, name: name, value: value), what: "env \(name)")
    }

    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {
        var modes: [SSHTerminalModes.Opcode: SSHTerminalModes.OpcodeValue] = [:]
        for (opcode, value) in pty.modes { modes[.init(rawValue: opcode)] = .init(rawValue: value) }
        let request = SSHChannelRequestEvent.PseudoTerminalRequest(
            wantReply: true, term: pty.term, terminalCharacterWidth: Int(pty.columns), terminalRowHeight: Int(pty.rows),
            terminalPixelWidth: Int(pty.widthPixels), terminalPixelHeight: Int(pty.heightPixels), terminalModes: SSHTerminalModes(modes))
        try await ask(request, what: "a terminal")
    }

    func onShell(requestID: UInt64) async throws {
        try await ask(SSHChannelRequestEvent.ShellRequest(wantReply: true), what: "a shell")
        startInput()
    }

    func onExec(requestID: UInt64, command: String) async throws {
        try await ask(SSHChannelRequestEvent.ExecRequest(command: command, wantReply: true), what: "the command")
        startInput()
    }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        try await ask(SSHChannelRequestEvent.SubsystemRequest(subsystem: name, wantReply: true), what: "subsystem \(name)")
        startInput()
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        tell(
            SSHChannelRequestEvent.WindowChangeRequest(
                terminalCharacterWidth: Int(size.columns), terminalRowHeight: Int(size.rows),
                terminalPixelWidth: Int(size.widthPixels), terminalPixelHeight: Int(size.heightPixels)))
    }

    func onSignal(requestID: UInt64, signal: String) async throws {
        tell(SSHChannelRequestEvent.SignalRequest(signal: signal))
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    func onClose() async {
        input?.cancel()
        try? await upstream.close()
    }

    /// Client input goes up once the program runs; its EOF becomes the upstream's EOF.
    private func startInput() {
        let stdin = downstream.stdin
        let upstream = self.upstream
        input = Task {
            for await chunk in stdin {
                do { try await upstream.writeAndFlush(SSHChannelData(type: .channel, data: .byteBuffer(chunk))) } catch { return }
            }
            try? await upstream.close(mode: .output)
        }
    }
}
