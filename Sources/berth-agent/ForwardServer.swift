#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import BerthForwardProtocol

/// `forward-server`: the container end of port forwarding (SPEC §8), speaking the forwarding
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
        guard let first = input.next() else { exit(0) }
        guard first.type == .setup, let payload = first.payload else { protocolFailure("the first packet must be SETUP") }
        let setup: ForwardSetup
        do {
            setup = try ForwardSetup(decoding: payload)
        } catch {
            protocolFailure("bad SETUP: \(error)")
        }
        let server = ForwardTable(output: PacketOutput())
        switch setup.connectionType {
        case .portDial, .socketDial:
            server.output.send(ForwardPacket(.success))
        case .portForward, .socketForward:
            let protocolName = setup.connectionType == .socketForward ? "unix" : setup.protocolName
            do {
                let listener = try Sockets.listen(protocolName: protocolName, host: setup.bindHost, port: setup.bindPort)
                server.output.send(ForwardPacket(.success, payload: ForwardSetupReply(boundPort: listener.port).encoded()))
                server.startAccepting(listener.fd, setup: setup, protocolName: protocolName, boundPort: listener.port)
            } catch {
                server.output.send(ForwardPacket(.error, payload: Array(error.message.utf8)))
                AgentError.fail(1, error.message)
            }
        case .x11:
            server.output.send(ForwardPacket(.error, payload: Array("X11 forwarding is not supported".utf8)))
            AgentError.fail(1, "X11 forwarding is not supported")
        }
        let dials = setup.connectionType == .portDial || setup.connectionType == .socketDial
        while let packet = input.next() {
            server.handle(packet, dials: dials)
        }
        // Berth closed our stdin: nothing can be forwarded any more.
        exit(0)
    }

    static func protocolFailure(_ message: String) -> Never {
        AgentError.fail(2, "forwarding protocol: \(message)")
    }
}

/// Reads packets from stdin.
final class PacketInput {
    private var reader = ForwardPacketReader()
    private var pending: [ForwardPacket] = []
    private var buffer = [UInt8](repeating: 0, count: 65536)

    /// The next packet; nil at EOF. Malformed input ends the agent with exit code 2.
    func next() -> ForwardPacket? {
        while pending.isEmpty {
            let count = read(STDIN_FILENO, &buffer, buffer.count)
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { return nil }
            do {
                pending = try reader.feed(buffer[0..<count])
            } catch {
                ForwardServer.protocolFailure(error.message)
            }
        }
        return pending.removeFirst()
    }
}

/// Writes whole packets to stdout; threads take turns.
final class PacketOutput: @unchecked Sendable {
    private let lock = Lock()

    func send(_ packet: ForwardPacket) {
        let bytes = packet.encoded()
        let ok = lock.locked { writeAll(STDOUT_FILENO, bytes) }
        // Berth is gone; nothing left to do.
        if !ok { exit(0) }
    }
}
