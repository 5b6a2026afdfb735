import NIOCore

/// Backpressure for a channel handler that feeds an async consumer: while the consumer is
/// behind, `read()` calls are held back, so the peer's window (or the socket buffer) fills up
/// instead of memory here.
///
/// The methods only decide; the caller issues `context.read()` afterwards, because a read can
/// deliver data (and so call `pause()`) before it returns.
public struct ReadGate {
    private var demand = true
    private var readPending = false

    public init() {}

    /// From the handler's `read(context:)`: true when the read should go ahead now.
    public mutating func shouldRead() -> Bool {
        if demand { return true }
        readPending = true
        return false
    }

    /// The consumer has enough for now.
    public mutating func pause() { demand = false }

    /// The consumer wants more: true when a held-back read should be issued now.
    public mutating func resume() -> Bool {
        demand = true
        guard readPending else { return false }
        readPending = false
        return true
    }
}

/// Runs `body`, failing with `timeoutError` if it takes longer than `limit`.
public func withDeadline<T: Sendable>(
    _ limit: Duration, _ timeoutError: @escaping @Sendable @autoclosure () -> Error, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw timeoutError()
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}
