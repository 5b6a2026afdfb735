import NIOConcurrencyHelpers
import NIOCore

/// The fast output path of a session channel (docs/architecture.md, "Data path"): a backend that
/// receives its program's output on an event loop hands each chunk to the SSH channel there, with
/// no task switch per chunk. `writeStdout`/`writeStderr` stay the general path; this is an
/// optional shortcut with the same meaning, including the layers' taps (metrics, audit).
public struct SessionOutput: Sendable {
    /// The connection's event loop; `write` must be called on it.
    public let eventLoop: any EventLoop
    private let sink: @Sendable (ByteBuffer, SessionOutputStream, EventLoopPromise<Void>?) -> Void

    /// `sink` is called on `eventLoop` only and completes the promise once the bytes have been
    /// sent (the client's window had room), or fails it when the channel is gone.
    public init(eventLoop: any EventLoop, sink: @escaping @Sendable (ByteBuffer, SessionOutputStream, EventLoopPromise<Void>?) -> Void) {
        self.eventLoop = eventLoop
        self.sink = sink
    }

    /// Queues `data` in order with everything written before; call on `eventLoop`.
    public func write(_ data: ByteBuffer, to stream: SessionOutputStream, promise: EventLoopPromise<Void>?) {
        eventLoop.preconditionInEventLoop()
        sink(data, stream, promise)
    }

    /// The same output, with `observe` seeing every chunk before it is queued (metrics, audit).
    public func tapped(_ observe: @escaping @Sendable (ByteBuffer, SessionOutputStream) -> Void) -> SessionOutput {
        let sink = self.sink
        return SessionOutput(eventLoop: eventLoop) { data, stream, promise in
            observe(data, stream)
            sink(data, stream, promise)
        }
    }
}

public enum SessionOutputStream: Sendable, Hashable {
    case stdout
    case stderr
}

/// Which event loop serves the connection a layer is working for. Set by the SSH front end
/// around the calls that prepare containers and sessions, so a backend can put its own channels
/// (the agent link) on the same loop and keep each byte on one thread.
public enum ConnectionContext {
    @TaskLocal public static var eventLoop: (any EventLoop)?
    /// Ends the connection with a line the client shows (SSH DISCONNECT's description). Set by
    /// the SSH front end around `onHandshakeSuccess`, for the operator console (docs/console.md).
    /// A class holds the closure: a task-local of function type crashed optimised builds in
    /// `swift_task_localValuePush` (Swift 6.3, release only).
    @TaskLocal public static var disconnector: ConnectionDisconnector?
    public static var disconnect: (@Sendable (_ description: String) -> Void)? { disconnector?.disconnect }
    /// Set by the operator console's layer around `onHandshakeSuccess`; the config layer reports
    /// there which backend and container serve the connection.
    @TaskLocal public static var placement: ConnectionPlacement?
}

/// How a layer ends the connection it works for (`ConnectionContext.disconnector`).
public final class ConnectionDisconnector: Sendable {
    public let disconnect: @Sendable (_ description: String) -> Void

    public init(_ disconnect: @escaping @Sendable (_ description: String) -> Void) { self.disconnect = disconnect }
}

/// Which backend and container serve a connection, as the config layer chose them.
public final class ConnectionPlacement: Sendable {
    private let value = NIOLockedValueBox<(backend: String, container: String)>(("", ""))

    public init() {}

    public func set(backend: String, container: String?) { value.withLockedValue { $0 = (backend, container ?? "") } }
    public var backend: String { value.withLockedValue { $0.backend } }
    public var container: String { value.withLockedValue { $0.container } }
}
