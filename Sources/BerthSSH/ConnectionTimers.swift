import BerthCore
import BerthSSHWire
import Logging
import NIOConcurrencyHelpers
import NIOCore
import BerthSSHEngine

/// The login grace timer and server keepalives of one connection.
final class ConnectionTimers: Sendable {
    private let connection: SSHConnection
    private let tasks = NIOLockedValueBox<[Scheduled<Void>]>([])
    private let repeated = NIOLockedValueBox<RepeatedTask?>(nil)
    private let unanswered = NIOLockedValueBox(0)

    init(connection: SSHConnection) {
        self.connection = connection
    }

    func start(engine: NIOLoopBound<WeakEngine>) {
        let connection = self.connection
        let settings = connection.settings
        let eventLoop = connection.channel.eventLoop
        if settings.loginGraceTime.nanoseconds > 0 {
            let grace = eventLoop.scheduleTask(in: .nanoseconds(settings.loginGraceTime.nanoseconds)) {
                guard !connection.isAuthenticated else { return }
                connection.logger.log(.notice, "SSH_LOGIN_GRACE_EXPIRED", "client did not authenticate within \(settings.loginGraceTime); closing the connection")
                connection.channel.close(promise: nil)
            }
            tasks.withLockedValue { $0.append(grace) }
        }
        if settings.clientAliveInterval.nanoseconds > 0 {
            let interval = TimeAmount.nanoseconds(settings.clientAliveInterval.nanoseconds)
            let task = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { [self] _ in
                self.keepalive(engine.value.handler)
            }
            repeated.withLockedValue { $0 = task }
        }
    }

    /// OpenSSH's `ClientAliveInterval`: a `keepalive@openssh.com` request with want-reply; any
    /// answer, success or failure, proves the client alive.
    private func keepalive(_ engine: SSHServerHandler?) {
        guard let engine, connection.isAuthenticated else { return }
        let missed = unanswered.withLockedValue { count in
            defer { count += 1 }
            return count
        }
        if missed >= connection.settings.clientAliveCountMax {
            connection.logger.log(.info, "SSH_KEEPALIVE_NORESP", "client did not answer \(missed) keepalives; closing the connection")
            engine.disconnect(reason: SSHDisconnectReason.connectionLost, description: "no answer to keepalives")
            return
        }
        engine.sendGlobalRequest(type: "keepalive@openssh.com", wantReply: true, payload: ByteBuffer()).whenSuccess { [unanswered] _ in
            unanswered.withLockedValue { $0 = 0 }
        }
    }

    func cancel() {
        tasks.withLockedValue { $0.forEach { $0.cancel() } }
        repeated.withLockedValue { $0?.cancel() }
    }
}

/// Closes a connection that has been silent for `ssh.idleTimeout`.
final class IdleConnectionCloser: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            logger.log(.info, "SSH_IDLE_TIMEOUT", "connection idle for too long; closing it")
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }
}
