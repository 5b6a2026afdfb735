import NIOCore

/// The byte pipe to one `forward-server` process: its stdin for sending; its stdout arrives
/// through the sequence given to `ForwardMultiplexer.run`. Backends (Docker, Kubernetes) provide it.
public protocol ForwardTransport: Sendable {
    /// Completes once the bytes are taken, so senders are held back by a slow agent.
    func send(_ bytes: [UInt8]) async throws
    /// Ends the agent: its stdin closes and it exits, dropping every connection.
    func close() async
}
