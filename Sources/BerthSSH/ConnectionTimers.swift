import BerthCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSH

/// The login grace timer and server keepalives of one connection.
final class ConnectionTimers: Sendable {
    private let connection: SSHConnection
    private let tasks = NIOLockedValueBox<[Scheduled<Void>]>([])
    private let repeated = NIOLockedValueBox<RepeatedTask?>(nil)
    private let unanswered = NIOLockedValueBox(0)

    init(connection: SSHConnection) {
        self.connection = connection
    }

    func start(sshHandler: NIOLoopBound<NIOSSHHandler>) {
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
                self.keepalive(sshHandler.value)
            }
            repeated.withLockedValue { $0 = task }
        }
    }

    /// The SSH library can only originate forwarding global requests, so the keepalive is a
    /// `cancel-tcpip-forward` for a port that was never forwarded: clients answer it (with
    /// failure) like OpenSSH's `keepalive@openssh.com`, and any answer proves the peer alive.
    private func keepalive(_ handler: NIOSSHHandler) {
        guard connection.isAuthenticated else { return }
        let missed = unanswered.withLockedValue { count in
            defer { count += 1 }
            return count
        }
        if missed >= connection.settings.clientAliveCountMax {
            connection.logger.log(.info, "SSH_KEEPALIVE_NORESP", "client did not answer \(missed) keepalives; closing the connection")
            connection.channel.close(promise: nil)
            return
        }
        let promise = connection.channel.eventLoop.makePromise(of: GlobalRequest.TCPForwardingResponse?.self)
        promise.futureResult.whenComplete { [unanswered] result in
            if case .failure(let error) = result, !(error is NIOSSHError) { return }
            unanswered.withLockedValue { $0 = 0 }
        }
        handler.sendTCPForwardingRequest(.cancel(host: "keepalive@berth", port: 0), promise: promise)
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

/// Logs protocol errors (bad packets, failed key exchange) and closes the connection; other
/// connections are unaffected.
final class ErrorLogger: ChannelInboundHandler {
    typealias InboundIn = Any
    private let logger: Logger

    init(logger: Logger) { self.logger = logger }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        if "\(error)".contains("streamlocal@openssh.com") {
            // swift-nio-ssh cannot parse this channel type and ends the connection itself.
            logger.log(.warning, "SSH_STREAMLOCAL_UNSUPPORTED", "the client asked for unix socket forwarding, which the SSH library cannot carry; the connection ends: \(error)")
        } else {
            logger.log(.info, "SSH_PROTOCOL_ERROR", "connection error: \(error)")
        }
        context.close(promise: nil)
    }
}
