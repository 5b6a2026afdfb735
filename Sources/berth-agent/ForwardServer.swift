#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthForwardProtocol

/// `forward-server`: the container end of port forwarding (docs/agent-protocol.md, "Forwarding"), speaking the forwarding
/// protocol on stdin/stdout. One thread reads the peer's packets and writes DATA into sockets
/// (blocking, so a slow socket slows the sender instead of filling memory); one thread per open
/// socket reads it and sends DATA. Stdin EOF means Berth is gone: everything ends at once.
///
/// CLOSE_CONNECTION means "this side has sent everything". The receiver shuts its socket for
/// writing and keeps passing the other direction until its own socket ends, then answers
/// SUCCESS; ERROR aborts a connection at once. A peer that closes at once on CLOSE (ContainerSSH)
/// fits this too.
enum ForwardServer {
    static func run(_ arguments: [String]) -> Never {
        guard arguments.isEmpty else { AgentError.fail(1, "forward-server takes no arguments", usage: true) }
        signal(SIGPIPE, SIG_IGN)
        let input = PacketInput()
        let server = ForwardTable(output: PacketOutput.standardOutput())
        if let failure = serve(server, next: { () throws(Failure) -> ForwardPacket? in try input.next() }) {
            AgentError.fail(failure.code, failure.message)
        }
        // Berth closed our stdin: nothing can be forwarded any more.
        exit(0)
    }

    struct Failure: Error {
        let code: Int32
        let message: String
    }

    /// Sets up from the first packet and handles the rest until `next` returns nil (the peer is
    /// gone). A failure has already been reported to the peer where the protocol allows.
    static func serve(_ server: ForwardTable, next: () throws(Failure) -> ForwardPacket?) -> Failure? {
        do {
            guard let first = try next() else { return nil }
            guard first.type == .setup, let payload = first.payload else { return protocolFailure("the first packet must be SETUP") }
            let setup: ForwardSetup
            do {
                setup = try ForwardSetup(decoding: payload)
            } catch {
                return protocolFailure("bad SETUP: \(error)")
            }
            switch setup.connectionType {
            case .portDial, .socketDial:
                server.output.send(ForwardPacket(.success))
            case .portForward, .socketForward:
                let protocolName = setup.connectionType == .socketForward ? "unix" : setup.protocolName
                do {
                    let listener = try server.socketOwner.run(protocolName: protocolName) { () throws(Sockets.Failure) in
                        try Sockets.listen(protocolName: protocolName, host: setup.bindHost, port: setup.bindPort)
                    }
                    server.output.send(ForwardPacket(.success, payload: ForwardSetupReply(boundPort: listener.port).encoded()))
                    server.startAccepting(listener.fd, setup: setup, protocolName: protocolName, boundPort: listener.port)
                } catch {
                    server.output.send(ForwardPacket(.error, payload: Array(error.message.utf8)))
                    return Failure(code: 1, message: error.message)
                }
            case .x11:
                do {
                    let (fd, display) = try X11Display.listen()
                    // Berth's extension: the reply's BindPort is the display number (DISPLAY=localhost:N).
                    server.output.send(ForwardPacket(.success, payload: ForwardSetupReply(boundPort: display).encoded()))
                    server.startAccepting(fd, setup: setup, protocolName: "tcp", boundPort: 6000 + display)
                } catch {
                    server.output.send(ForwardPacket(.error, payload: Array(error.message.utf8)))
                    return Failure(code: 1, message: error.message)
                }
            }
            let dials = setup.connectionType == .portDial || setup.connectionType == .socketDial
            while let packet = try next() {
                server.handle(packet, dials: dials)
            }
            return nil
        } catch {
            return error
        }
    }

    static func protocolFailure(_ message: String) -> Failure {
        Failure(code: 2, message: "forwarding protocol: \(message)")
    }
}

/// Reads packets from stdin.
final class PacketInput {
    private var reader = ForwardPacketReader()
    private var pending: [ForwardPacket] = []
    private var buffer = [UInt8](repeating: 0, count: 65536)

    /// The next packet; nil at EOF.
    func next() throws(ForwardServer.Failure) -> ForwardPacket? {
        while pending.isEmpty {
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            do {
                pending = try reader.feed(buffer[0..<count])
            } catch {
                throw ForwardServer.protocolFailure(error.message)
            }
        }
        return pending.removeFirst()
    }
}

/// Writes whole packets to the peer; threads take turns.
final class PacketOutput: @unchecked Sendable {
    private let lock = Lock()
    private let sink: ([UInt8]) -> Void

    init(sink: @escaping ([UInt8]) -> Void) { self.sink = sink }

    /// The CLI's stdout; a failed write means Berth is gone and ends the agent.
    static func standardOutput() -> PacketOutput {
        PacketOutput { bytes in
            if !writeAll(STDOUT_FILENO, bytes) { exit(0) }
        }
    }

    func send(_ packet: ForwardPacket) {
        let bytes = packet.encoded()
        lock.locked { sink(bytes) }
    }
}
