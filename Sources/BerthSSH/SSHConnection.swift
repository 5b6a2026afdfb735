import BerthCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Everything Berth tracks about one TCP connection on the SSH side: the layer stack's
/// handlers for it, the authentication state and the limits that apply to it.
final class SSHConnection: Sendable {
    let channel: Channel
    let id: ConnectionID
    let remoteAddress: RemoteAddress
    let settings: SSHFrontEndSettings
    let logger: Logger
    /// The outermost layer's handler for this connection, once `onNetworkConnection` returned.
    let networkHandler: EventLoopPromise<any NetworkConnectionHandler>
    /// The handler for the authenticated connection, once `onHandshakeSuccess` returned.
    /// Channel opens wait for it (the container is started before channels are served).
    let sshHandler: EventLoopPromise<any SSHConnectionHandler>
    /// Completes once the layers have been told of the disconnect and have cleaned up.
    let finished: EventLoopPromise<Void>
    /// Shared by the listener's connections; nil where a test builds a connection alone.
    let loginGuard: LoginGuard?
    private let onAuthenticated: @Sendable () -> Void
    private let state = NIOLockedValueBox(State())

    private struct State {
        var clientVersion = ""
        var failedAttempts = 0
        var authenticated = false
        var nextChannelID: UInt64 = 0
        var handshakeReported = false
        var authenticatedMetadata: ConnectionMetadata?
        var openSessions = 0
        var pendingGlobalRequests: EventLoopFuture<Void>?
        /// Session handlers whose `onClose` has not returned yet, and who waits for none.
        var runningSessionHandlers = 0
        var sessionHandlersDone: [CheckedContinuation<Void, Never>] = []
        var gaveUpOnSessionHandlers = false
    }

    init(
        channel: Channel, remoteAddress: RemoteAddress, settings: SSHFrontEndSettings, logger: Logger,
        loginGuard: LoginGuard? = nil, onAuthenticated: @escaping @Sendable () -> Void = {}
    ) {
        self.channel = channel
        self.loginGuard = loginGuard
        self.onAuthenticated = onAuthenticated
        self.id = ConnectionID()
        self.remoteAddress = remoteAddress
        self.settings = settings
        var logger = logger
        logger[metadataKey: LogKey.connectionID] = .string(id.hex)
        logger[metadataKey: LogKey.remoteAddress] = .string(remoteAddress.description)
        self.logger = logger
        self.networkHandler = channel.eventLoop.makePromise()
        self.sshHandler = channel.eventLoop.makePromise()
        self.finished = channel.eventLoop.makePromise()
    }

    func setClientVersion(_ version: String) {
        state.withLockedValue { $0.clientVersion = version }
    }

    func metadata(username: String = "") -> ConnectionMetadata {
        ConnectionMetadata(connectionID: id, remoteAddress: remoteAddress, clientVersion: state.withLockedValue { $0.clientVersion }, username: username)
    }

    var isAuthenticated: Bool { state.withLockedValue { $0.authenticated } }

    /// True once `maxAuthTries` credentials were rejected; later attempts are not even checked.
    var isExhausted: Bool { state.withLockedValue { $0.failedAttempts >= settings.maxAuthTries } }

    /// What the layers knew about the user when authentication finished.
    var authenticatedMetadata: ConnectionMetadata { state.withLockedValue { $0.authenticatedMetadata } ?? metadata() }

    func sessionOpened() { state.withLockedValue { $0.openSessions += 1 } }
    func sessionClosed() { state.withLockedValue { $0.openSessions -= 1 } }
    /// Brackets a session handler's life, up to its `onClose` returning (SessionRequestProcessor).
    func sessionHandlerStarted() { state.withLockedValue { $0.runningSessionHandlers += 1 } }

    func sessionHandlerFinished() {
        let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
            state.runningSessionHandlers -= 1
            guard state.runningSessionHandlers == 0 else { return [] }
            defer { state.sessionHandlersDone = [] }
            return state.sessionHandlersDone
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Layers are told of the disconnect only after every session's `onClose` has returned, so
    /// what a session does as it ends (a resumable program detaching, its audit record) is still
    /// part of the connection (docs/architecture.md, "Layers"). A handler that never returns
    /// holds the disconnect back at most `limit` (a request stuck on a wedged agent is freed only
    /// by the container's removal, which comes after).
    private func sessionHandlersFinished(limit: Duration = .seconds(10)) async {
        let waiter = Task {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let done = state.withLockedValue { state -> Bool in
                    guard state.runningSessionHandlers > 0, !state.gaveUpOnSessionHandlers else { return true }
                    state.sessionHandlersDone.append(continuation)
                    return false
                }
                if done { continuation.resume() }
            }
        }
        let timer = Task {
            try await Task.sleep(for: limit)
            logger.log(.warning, "SSH_SESSION_CLOSE_SLOW", "a session did not finish closing within \(limit); telling the layers of the disconnect anyway")
            let waiters = state.withLockedValue { state -> [CheckedContinuation<Void, Never>] in
                state.gaveUpOnSessionHandlers = true
                defer { state.sessionHandlersDone = [] }
                return state.sessionHandlersDone
            }
            for waiter in waiters { waiter.resume() }
        }
        await waiter.value
        timer.cancel()
    }

    /// During a graceful stop a connection without sessions has nothing to finish.
    var hasOpenSessions: Bool { state.withLockedValue { $0.openSessions > 0 } }

    /// OpenSSH servers answer global requests before they look at later messages, so a client
    /// may run `wget localhost:PORT` right after asking for `-R PORT`. Channels opened after a
    /// forwarding request therefore wait until it is answered.
    func trackGlobalRequest(_ done: EventLoopFuture<Void>) {
        state.withLockedValue { state in
            let settled = done.flatMapErrorThrowing { _ in }
            state.pendingGlobalRequests = state.pendingGlobalRequests.map { $0.and(settled).map { _ in } } ?? settled
        }
    }

    func globalRequestsSettled() -> EventLoopFuture<Void> {
        state.withLockedValue { $0.pendingGlobalRequests } ?? channel.eventLoop.makeSucceededVoidFuture()
    }

    func allocateChannelID() -> UInt64 {
        state.withLockedValue { state in
            defer { state.nextChannelID += 1 }
            return state.nextChannelID
        }
    }

    /// Counts a rejected credential; true when the connection has used up its attempts.
    func recordFailure() -> Bool {
        state.withLockedValue { state in
            state.failedAttempts += 1
            return state.failedAttempts >= settings.maxAuthTries
        }
    }

    /// Authentication succeeded: from here the next layers prepare the user's environment.
    /// `refuse` ends the connection with one line for the user when that fails.
    func authenticated(_ metadata: ConnectionMetadata, refuse: @escaping @Sendable (_ description: String) -> Void) {
        // An answer that arrives after the client left must not start anything: the disconnect
        // has already been reported, and nobody would remove the container.
        let open = state.withLockedValue { state -> Bool in
            guard !state.handshakeReported else { return false }
            state.authenticated = true
            state.handshakeReported = true
            state.authenticatedMetadata = metadata
            return true
        }
        if open { onAuthenticated() }
        guard open else {
            logger.log(
                .info, "SSH_AUTH_AFTER_DISCONNECT", "authentication finished after the client disconnected; nothing is started", [LogKey.username: "\(metadata.effectiveUsername)"])
            return
        }
        let logger = self.logger
        let promise = sshHandler
        let channel = self.channel
        promise.completeWithTask {
            let handler = try await self.networkHandler.futureResult.get()
            do {
                return try await ConnectionContext.$eventLoop.withValue(channel.eventLoop) {
                    try await ConnectionContext.$disconnector.withValue(ConnectionDisconnector(refuse)) { try await handler.onHandshakeSuccess(metadata) }
                }
            } catch {
                let reason = (error as? CodedError)?.description ?? "\(error)"
                logger.log(
                    .error, "SSH_BACKEND_REJECTED_HANDSHAKE", "could not prepare the user's environment; closing the connection",
                    [LogKey.reason: "\(reason)", LogKey.username: "\(metadata.effectiveUsername)"])
                // The reason may hold webhook or engine text meant for the operator; the user
                // gets the code to quote.
                refuse("Berth could not prepare your session (\((error as? CodedError)?.code.description ?? "SSH_BACKEND_REJECTED_HANDSHAKE"))")
                throw error
            }
        }
    }

    /// The connection ended: report a handshake that never completed, then the disconnect.
    func closed() async {
        defer { finished.succeed() }
        let unfinished = state.withLockedValue { state in
            defer { state.handshakeReported = true }
            return !state.handshakeReported
        }
        if unfinished { sshHandler.fail(ChannelError.ioOnClosedChannel) }
        guard let handler = try? await networkHandler.futureResult.get() else { return }
        // A container may still be starting; let that finish so the disconnect removes it.
        _ = try? await sshHandler.futureResult.get()
        if unfinished {
            await handler.onHandshakeFailed(metadata(), reason: "connection closed before authentication completed")
        }
        await sessionHandlersFinished()
        await handler.onDisconnect()
    }
}
