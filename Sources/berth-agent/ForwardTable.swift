#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthForwardProtocol

/// The open connections of a forward-server and their state machine.
final class ForwardTable: @unchecked Sendable {
    let output: PacketOutput
    private let lock = Lock()
    private var connections: [UInt64: Connection] = [:]
    private var lastPeerID: UInt64 = 0
    private var lastOwnID: UInt64 = 0
    private var listener: Int32 = -1
    private var noMoreConnections = false

    final class Connection {
        var fd: Int32 = -1
        /// The socket is connected and a reader thread runs (or ran) for it.
        var started = false
        /// Our reader reached the socket's end and told the peer (CLOSE or the answer to its CLOSE).
        var readerDone = false
        /// The peer has sent everything (it sent CLOSE, or answered ours).
        var peerDone = false
        var aborted = false
    }

    /// Runs once the server has nothing left to do after NO_MORE_CONNECTIONS (the CLI exits).
    private let onIdle: () -> Void
    private var idleReported = false

    /// Whose ids unix-socket dials and listens use; nil: the agent's own (the CLI mode).
    let socketOwner: SocketOwner?

    init(output: PacketOutput, socketOwner: SocketOwner? = nil, onIdle: @escaping () -> Void = { exit(0) }) {
        self.output = output
        self.socketOwner = socketOwner
        self.onIdle = onIdle
    }

    /// Berth is gone (a link's forwarding channel ended): drop every connection and the listener.
    /// The CLI needs none of this, its process exit does the same.
    func shutdownAll() {
        let (fds, listening) = lock.locked { () -> ([Int32], Int32) in
            noMoreConnections = true
            idleReported = true
            let open = connections.values.filter { !$0.aborted && $0.fd >= 0 }
            for connection in open { connection.aborted = true }
            let started = open.filter { $0.started && !$0.readerDone }
            // A running reader owns its descriptor and closes it when it wakes.
            for connection in started { shutdown(connection.fd, Int32(SHUT_RDWR)) }
            let idle = open.filter { !($0.started && !$0.readerDone) }.map(\.fd)
            connections = [:]
            return (idle, listener)
        }
        for fd in fds { close(fd) }
        if listening >= 0 { shutdown(listening, Int32(SHUT_RDWR)) }
    }

    func handle(_ packet: ForwardPacket, dials: Bool) {
        let id = packet.connectionID
        switch packet.type {
        case .newConnection:
            guard dials else { return reply(.error, id, "this forward-server does not dial") }
            guard let payload = packet.payload, let target = try? ForwardNewConnection(decoding: payload) else {
                return reply(.error, id, "bad NEW_CONNECTION payload")
            }
            let accepted = lock.locked { () -> Bool in
                guard id > lastPeerID, connections[id] == nil, !noMoreConnections else { return false }
                lastPeerID = id
                connections[id] = Connection()
                return true
            }
            guard accepted else { return reply(.error, id, "connection id \(id) is not new") }
            startThread { self.dial(id, target) }
        case .success:
            answered(id, accepted: true)
        case .error:
            answered(id, accepted: false)
        case .data:
            guard let payload = packet.payload, let fd = writableSocket(id) else { return }
            if !writeAll(fd, payload) { abort(id, notify: true) }
        case .closeConnection:
            peerClosed(id)
        case .noMoreConnections:
            let fd = lock.locked { () -> Int32 in
                noMoreConnections = true
                return listener
            }
            // Wakes the accept thread, which closes the listener.
            if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
            exitIfIdle()
        case .setup:
            reply(.error, id, "already set up")
        }
    }

    private func reply(_ type: ForwardPacketType, _ id: UInt64, _ message: String? = nil) {
        output.send(ForwardPacket(type, connectionID: id, payload: message.map { Array($0.utf8) }))
    }

    private func dial(_ id: UInt64, _ target: ForwardNewConnection) {
        let fd: Int32
        do {
            fd = try socketOwner.run(protocolName: target.protocolName) { () throws(Sockets.Failure) -> Int32 in
                try Sockets.dial(protocolName: target.protocolName, host: target.connectedAddress, port: target.connectedPort)
            }
        } catch {
            lock.locked { _ = connections.removeValue(forKey: id) }
            reply(.error, id, error.message)
            exitIfIdle()
            return
        }
        let go = lock.locked { () -> Bool in
            guard let connection = connections[id], !connection.aborted else { return false }
            connection.fd = fd
            connection.started = true
            return true
        }
        guard go else {
            close(fd)
            lock.locked { _ = connections.removeValue(forKey: id) }
            return
        }
        reply(.success, id)
        pump(id, fd)
    }

    /// Listening mode: every accepted socket is offered to the peer as a new connection.
    func startAccepting(_ fd: Int32, setup: ForwardSetup, protocolName: String, boundPort: UInt64) {
        lock.locked { listener = fd }
        startThread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    break
                }
                let peer = protocolName == "unix" ? (address: "", port: UInt64(0)) : Sockets.peer(client)
                let id = self.lock.locked { () -> UInt64? in
                    guard !self.noMoreConnections else { return nil }
                    self.lastOwnID += 1
                    let connection = Connection()
                    connection.fd = client
                    self.connections[self.lastOwnID] = connection
                    return self.lastOwnID
                }
                guard let id else { close(client); break }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                let offer = ForwardNewConnection(
                    protocolName: protocolName, connectedAddress: setup.bindHost, connectedPort: boundPort,
                    originatorAddress: peer.address, originatorPort: peer.port)
                self.output.send(ForwardPacket(.newConnection, connectionID: id, payload: offer.encoded()))
                if setup.singleConnection {
                    self.lock.locked { self.noMoreConnections = true }
                    break
                }
            }
            self.lock.locked {
                self.listener = -1
                self.noMoreConnections = true
            }
            // The name goes before the socket, so a client that finds it closed finds it removed.
            if protocolName == "unix" { self.socketOwner.unlinkSocket(setup.bindHost) }
            close(fd)
            self.exitIfIdle()
        }
    }

    /// SUCCESS or ERROR from the peer: the answer to our NEW_CONNECTION or to our CLOSE.
    private func answered(_ id: UInt64, accepted: Bool) {
        enum Step { case none, start(Int32), finish(Int32), abort }
        let step = lock.locked { () -> Step in
            guard let connection = connections[id] else { return .none }
            if !connection.started {
                guard accepted else { return .abort }
                connection.started = true
                return .start(connection.fd)
            }
            if !accepted { return .abort }
            guard connection.readerDone else { return .none }
            connection.peerDone = true
            connections[id] = nil
            return .finish(connection.fd)
        }
        switch step {
        case .none: break
        case .start(let fd): startThread { self.pump(id, fd) }
        case .finish(let fd):
            close(fd)
            exitIfIdle()
        case .abort: abort(id, notify: false)
        }
    }

    private func peerClosed(_ id: UInt64) {
        // Decided under the lock, because the reader thread may be finishing at the same time.
        let answerNow = lock.locked { () -> Int32?? in
            guard let connection = connections[id], connection.started, !connection.peerDone else { return .none }
            connection.peerDone = true
            guard connection.readerDone else {
                shutdown(connection.fd, Int32(SHUT_WR))
                return .some(nil)
            }
            connections[id] = nil
            return .some(connection.fd)
        }
        switch answerNow {
        case .none: reply(.error, id, "no such connection")
        case .some(nil): break  // the reader answers when its socket ends
        case .some(let fd?):
            close(fd)
            reply(.success, id)
            exitIfIdle()
        }
    }

    private func writableSocket(_ id: UInt64) -> Int32? {
        lock.locked {
            guard let connection = connections[id], connection.started, !connection.peerDone, !connection.aborted else { return nil }
            return connection.fd
        }
    }

    /// Ends a connection at once; the reader thread, if any, wakes up and closes the socket.
    private func abort(_ id: UInt64, notify: Bool) {
        let fd = lock.locked { () -> Int32? in
            guard let connection = connections.removeValue(forKey: id) else { return nil }
            connection.aborted = true
            // A running reader owns the descriptor and closes it when it wakes.
            if connection.started && !connection.readerDone { shutdown(connection.fd, Int32(SHUT_RDWR)); return -1 }
            return connection.fd
        }
        guard let fd else { return }
        if fd >= 0 { close(fd) }
        if notify { reply(.error, id, "write to the socket failed") }
        exitIfIdle()
    }

    /// Reader thread of one socket.
    private func pump(_ id: UInt64, _ fd: Int32) {
        var buffer = [UInt8](repeating: 0, count: 32768)
        while true {
            let count = read(fd, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            if lock.locked({ connections[id]?.aborted ?? true }) { break }
            output.send(ForwardPacket(.data, connectionID: id, payload: Array(buffer[0..<count])))
        }
        enum End { case aborted, answerPeer, waitForPeer }
        let end = lock.locked { () -> End in
            guard let connection = connections[id], !connection.aborted else { return .aborted }
            connection.readerDone = true
            if connection.peerDone {
                connections[id] = nil
                return .answerPeer
            }
            return .waitForPeer
        }
        switch end {
        case .aborted:
            close(fd)
        case .answerPeer:
            close(fd)
            reply(.success, id)
        case .waitForPeer:
            reply(.closeConnection, id)
        }
        exitIfIdle()
    }

    /// After NO_MORE_CONNECTIONS the server ends once its last connection has.
    private func exitIfIdle() {
        let idle = lock.locked { () -> Bool in
            guard noMoreConnections && listener < 0 && connections.isEmpty && !idleReported else { return false }
            idleReported = true
            return true
        }
        if idle { onIdle() }
    }
}
