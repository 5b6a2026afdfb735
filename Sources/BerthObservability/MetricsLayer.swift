import BerthCore
import NIOCore

/// The metrics layer (docs/architecture.md, "The layer stack"): counts connections, handshakes and auth results, and measures
/// sessions (duration, bytes each way) by wrapping the session channel it passes on.
public struct MetricsServerLayer: ServerHandler {
    private let next: any ServerHandler

    public init(next: any ServerHandler) { self.next = next }

    public func onReady() async throws { try await next.onReady() }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        BerthMetrics.connectionOpened()
        do {
            return MetricsConnectionLayer(next: try await next.onNetworkConnection(metadata))
        } catch {
            BerthMetrics.connectionClosed()
            throw error
        }
    }

    public func onShutdown(deadline: ContinuousClock.Instant) async { await next.onShutdown(deadline: deadline) }
}

struct MetricsConnectionLayer: NetworkConnectionHandler {
    let next: any NetworkConnectionHandler

    private func record(_ outcome: AuthOutcome, method: String) -> AuthOutcome {
        switch outcome {
        case .success: BerthMetrics.authAttempt(method: method, outcome: "success")
        case .failure: BerthMetrics.authAttempt(method: method, outcome: "failure")
        case .unavailable: BerthMetrics.authAttempt(method: method, outcome: "unavailable")
        }
        return outcome
    }

    func onAuthPassword(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        record(await next.onAuthPassword(metadata, password: password), method: "password")
    }

    func onAuthPublicKey(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        record(await next.onAuthPublicKey(metadata, publicKey: publicKey), method: "pubkey")
    }

    func onAuthSecondFactor(_ metadata: ConnectionMetadata, code: String) async -> AuthOutcome {
        record(await next.onAuthSecondFactor(metadata, code: code), method: "totp")
    }

    func onAuthKeyboardInteractive(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        record(await next.onAuthKeyboardInteractive(metadata, conversation: conversation), method: "keyboard-interactive")
    }

    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async {
        BerthMetrics.handshake(successful: false)
        await next.onHandshakeFailed(metadata, reason: reason)
    }

    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        BerthMetrics.handshake(successful: true)
        return MetricsSSHConnectionLayer(next: try await next.onHandshakeSuccess(metadata))
    }

    func onDisconnect() async {
        BerthMetrics.connectionClosed()
        await next.onDisconnect()
    }
}

struct MetricsSSHConnectionLayer: SSHConnectionLayer {
    let next: any SSHConnectionHandler

    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        let measured = MeasuredSessionChannel(base: channel)
        return MeasuredSession(next: try await next.onSessionChannel(measured), opened: .now)
    }

    func onUnsupportedChannel(type: String) async { await next.onUnsupportedChannel(type: type) }
    func onUnsupportedGlobalRequest(type: String) async { await next.onUnsupportedGlobalRequest(type: type) }

    func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        try await next.onDirectForward(request, channel: channel)
    }

    func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        try await next.onReverseForward(forward, opener: opener)
    }

    func onCancelReverseForward(_ forward: ReverseForward) async throws { try await next.onCancelReverseForward(forward) }

    func onDirectStreamLocal(path: String, channel: any ForwardChannel) async throws {
        try await next.onDirectStreamLocal(path: path, channel: channel)
    }

    func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws {
        try await next.onStreamLocalForward(path: path, opener: opener)
    }

    func onCancelStreamLocalForward(path: String) async throws { try await next.onCancelStreamLocalForward(path: path) }
}

/// Counts the bytes a session moves; everything else is the base channel's.
struct MeasuredSessionChannel: SessionChannel {
    let base: any SessionChannel

    var channelID: UInt64 { base.channelID }
    var connection: ConnectionMetadata { base.connection }
    var stdin: SessionInput { base.stdin.tapped { BerthMetrics.bytesIn($0.readableBytes) } }

    func writeStdout(_ data: ByteBuffer) async throws {
        BerthMetrics.bytesOut(data.readableBytes)
        try await base.writeStdout(data)
    }

    func writeStderr(_ data: ByteBuffer) async throws {
        BerthMetrics.bytesOut(data.readableBytes)
        try await base.writeStderr(data)
    }

    func sendExitStatus(_ status: UInt32) async { await base.sendExitStatus(status) }
    func sendExitSignal(name: String, coreDumped: Bool, message: String) async { await base.sendExitSignal(name: name, coreDumped: coreDumped, message: message) }
    func closeWrite() async { await base.closeWrite() }
    func close() async { await base.close() }
    func record(_ event: SessionLifecycleEvent) async { await base.record(event) }
    var output: SessionOutput? { base.output?.tapped { data, _ in BerthMetrics.bytesOut(data.readableBytes) } }
}

struct MeasuredSession: SessionChannelLayer {
    let next: any SessionChannelHandler
    let opened: ContinuousClock.Instant

    func onEnv(requestID: UInt64, name: String, value: String) async throws { try await next.onEnv(requestID: requestID, name: name, value: value) }
    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws { try await next.onPtyRequest(requestID: requestID, pty) }
    func onShell(requestID: UInt64) async throws { try await next.onShell(requestID: requestID) }
    func onExec(requestID: UInt64, command: String) async throws { try await next.onExec(requestID: requestID, command: command) }
    func onSubsystem(requestID: UInt64, name: String) async throws { try await next.onSubsystem(requestID: requestID, name: name) }
    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws { try await next.onWindowChange(requestID: requestID, size) }
    func onSignal(requestID: UInt64, signal: String) async throws { try await next.onSignal(requestID: requestID, signal: signal) }
    func onUnsupportedRequest(requestID: UInt64, type: String) async { await next.onUnsupportedRequest(requestID: requestID, type: type) }
    func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws {
        try await next.onX11Request(requestID: requestID, request, opener: opener)
    }
    func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws {
        try await next.onAgentForwardRequest(requestID: requestID, opener: opener)
    }

    func onClose() async {
        BerthMetrics.sessionEnded(after: .now - opened)
        await next.onClose()
    }
}
