import NIOConcurrencyHelpers

/// A result that arrives once (a program's start, a forward's open, a request's answer, the
/// agent's hello) and the one task that waits for it. The first result counts; waiting is
/// cancellable, so a deadline around it can end it.
final class OneShot<Value: Sendable>: Sendable {
    private let state = NIOLockedValueBox<(result: Result<Value, Error>?, waiter: CheckedContinuation<Value, Error>?)>((nil, nil))

    func complete(_ result: Result<Value, Error>) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Value, Error>? in
            guard state.result == nil else { return nil }
            state.result = result
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(with: result)
    }

    func wait() async throws -> Value {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (waiter: CheckedContinuation<Value, Error>) in
                let ready = state.withLockedValue { state -> Result<Value, Error>? in
                    if let result = state.result { return result }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    state.waiter = waiter
                    return nil
                }
                if let ready { waiter.resume(with: ready) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Value, Error>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
