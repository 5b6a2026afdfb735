import BerthCore
import NIOCore

/// The console's layer (docs/architecture.md, "The layer stack"): under metrics, above audit.
/// It registers each connection and session in `LiveSessions` and taps their bytes for the
/// counters and the watchers; everything else passes through unchanged.
public struct ConsoleServerLayer: ServerHandler {
    private let next: any ServerHandler
    private let registry: LiveSessions

    public init(next: any ServerHandler, registry: LiveSessions) {
        self.next = next
        self.registry = registry
    }

    public func onReady() async throws { try await next.onReady() }

    public func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler {
        let handler = try await next.onNetworkConnection(metadata)
        let connection = LiveConnection(metadata: metadata, registry: registry)
        registry.add(connection)
        return ConsoleConnectionLayer(next: handler, connection: connection)
    }

    public func onShutdown(deadline: ContinuousClock.Instant) async { await next.onShutdown(deadline: deadline) }
}

struct ConsoleConnectionLayer: NetworkConnectionHandler {
    let next: any NetworkConnectionHandler
    let connection: LiveConnection

    func onAuthPassword(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        connection.attempted(username: metadata.username)
        return await next.onAuthPassword(metadata, password: password)
    }

    func onAuthPublicKey(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome {
        connection.attempted(username: metadata.username)
        return await next.onAuthPublicKey(metadata, publicKey: publicKey)
    }

    func onAuthSecondFactor(_ metadata: ConnectionMetadata, code: String) async -> AuthOutcome {
        await next.onAuthSecondFactor(metadata, code: code)
    }

    func onAuthKeyboardInteractive(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome {
        connection.attempted(username: metadata.username)
        return await next.onAuthKeyboardInteractive(metadata, conversation: conversation)
    }

    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async {
        await next.onHandshakeFailed(metadata, reason: reason)
    }

    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler {
        let placement = ConnectionPlacement()
        let disconnect = ConnectionContext.disconnect
        let handler = try await ConnectionContext.$placement.withValue(placement) { try await next.onHandshakeSuccess(metadata) }
        connection.authenticated(metadata, placement: placement, disconnect: disconnect)
        return ConsoleSSHConnectionLayer(next: handler, connection: connection)
    }

    func onDisconnect() async {
        await next.onDisconnect()
        for session in connection.sessions { session.ended() }
        connection.registry.remove(connection)
    }
}

struct ConsoleSSHConnectionLayer: SSHConnectionLayer {
    let next: any SSHConnectionHandler
    let connection: LiveConnection

    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        let registry = connection.registry
        let session = LiveSession(channel: channel, limit: registry.outputLimit) { registry.changed() }
        let handler = try await next.onSessionChannel(WatchedSessionChannel(base: channel, session: session))
        connection.add(session)
        return WatchedSession(next: handler, session: session, connection: connection)
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
}

/// Passes the session's bytes on and gives a copy of the output to the registry, which never waits.
struct WatchedSessionChannel: SessionChannel {
    let base: any SessionChannel
    let session: LiveSession

    var channelID: UInt64 { base.channelID }
    var connection: ConnectionMetadata { base.connection }
    var stdin: SessionInput { base.stdin.tapped { [session] in session.input($0.readableBytes) } }

    func writeStdout(_ data: ByteBuffer) async throws {
        session.output(data)
        try await base.writeStdout(data)
    }

    func writeStderr(_ data: ByteBuffer) async throws {
        session.output(data)
        try await base.writeStderr(data)
    }

    func sendExitStatus(_ status: UInt32) async { await base.sendExitStatus(status) }
    func sendExitSignal(name: String, coreDumped: Bool, message: String) async { await base.sendExitSignal(name: name, coreDumped: coreDumped, message: message) }
    func closeWrite() async { await base.closeWrite() }
    func close() async { await base.close() }
    func record(_ event: SessionLifecycleEvent) async { await base.record(event) }
    var output: SessionOutput? { base.output?.tapped { [session] data, _ in session.output(data) } }
}

struct WatchedSession: SessionChannelLayer {
    let next: any SessionChannelHandler
    let session: LiveSession
    let connection: LiveConnection

    func onEnv(requestID: UInt64, name: String, value: String) async throws { try await next.onEnv(requestID: requestID, name: name, value: value) }
    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws { try await next.onPtyRequest(requestID: requestID, pty) }

    func onShell(requestID: UInt64) async throws {
        try await next.onShell(requestID: requestID)
        session.setProgram("shell")
    }

    func onExec(requestID: UInt64, command: String) async throws {
        try await next.onExec(requestID: requestID, command: command)
        session.setProgram(command)
    }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        try await next.onSubsystem(requestID: requestID, name: name)
        session.setProgram("subsystem \(name)")
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws { try await next.onWindowChange(requestID: requestID, size) }
    func onSignal(requestID: UInt64, signal: String) async throws { try await next.onSignal(requestID: requestID, signal: signal) }
    func onUnsupportedRequest(requestID: UInt64, type: String) async { await next.onUnsupportedRequest(requestID: requestID, type: type) }

    func onClose() async {
        await next.onClose()
        session.ended()
        connection.remove(session)
    }
}
