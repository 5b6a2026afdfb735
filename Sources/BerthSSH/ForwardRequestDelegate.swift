import BerthCore
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSH

/// `tcpip-forward` and `cancel-tcpip-forward` global requests, handed to the layer stack once
/// the connection's environment is ready. A refusal is an SSH request failure.
struct ForwardRequestDelegate: GlobalRequestDelegate {
    let connection: SSHConnection

    func tcpForwardingRequest(_ request: GlobalRequest.TCPForwardingRequest, handler: NIOSSHHandler,
                              promise: EventLoopPromise<GlobalRequest.TCPForwardingResponse>) {
        let opener = SSHForwardedChannelOpener(handler: NIOLoopBound(handler, eventLoop: promise.futureResult.eventLoop), connection: connection)
        let connection = self.connection
        connection.trackGlobalRequest(promise.futureResult.map { _ in })
        promise.completeWithTask {
            let layers = try await connection.sshHandler.futureResult.get()
            do {
                switch request {
                case .listen(let host, let port):
                    let forward = ReverseForward(host: host, port: UInt32(clamping: port))
                    let bound = try await layers.onReverseForward(forward, opener: opener)
                    connection.logger.log(.debug, "SSH_REVERSE_FORWARD", "listening for the client", ["forward": "\(host):\(bound)"])
                    return .init(boundPort: port == 0 ? Int(bound) : nil)
                case .cancel(let host, let port):
                    try await layers.onCancelReverseForward(ReverseForward(host: host, port: UInt32(clamping: port)))
                    return .init(boundPort: nil)
                }
            } catch {
                connection.logger.log(.info, "SSH_FORWARD_REFUSED", "forwarding request refused: \(error)")
                throw error
            }
        }
    }
}

/// Opens `forwarded-tcpip` channels towards the client.
struct SSHForwardedChannelOpener: ForwardedChannelOpener {
    let handler: NIOLoopBound<NIOSSHHandler>
    let connection: SSHConnection

    func openForwardedChannel(_ forward: ReverseForward, originatorHost: String, originatorPort: UInt32) async throws -> any ForwardChannel {
        // The channel type needs a parseable address; a unix peer has none.
        let originator = (try? SocketAddress(ipAddress: originatorHost, port: Int(originatorPort)))
            ?? (try! SocketAddress(ipAddress: "127.0.0.1", port: 0))
        let eventLoop = handler.eventLoop
        let opened = eventLoop.makePromise(of: Channel.self)
        let attached = NIOLockedValueBox<NIOForwardChannel?>(nil)
        let channelID = connection.allocateChannelID()
        eventLoop.execute { [handler] in
            let type = SSHChannelType.forwardedTCPIP(.init(listeningHost: forward.host, listeningPort: Int(forward.port), originatorAddress: originator))
            handler.value.createChannel(opened, channelType: type) { child, _ in
                child.setOption(ChannelOptions.allowRemoteHalfClosure, value: true).flatMapThrowing {
                    let channel = try NIOForwardChannel.attach(to: child, channelID: channelID)
                    attached.withLockedValue { $0 = channel }
                }
            }
        }
        _ = try await opened.futureResult.get()
        guard let channel = attached.withLockedValue({ $0 }) else { throw ChannelError.ioOnClosedChannel }
        return channel
    }
}
