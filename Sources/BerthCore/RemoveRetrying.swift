import Logging

/// Removes a user's container or pod, the same for every backend: retried until `limit` runs
/// out (an engine or API server busy with other removals answers late or with a conflict),
/// counted once removed, and logged with the backend's codes either way. `what` names the
/// object in the log ("container", "pod"), `fields` its identity.
///
/// The attempts run in a task of their own: a removal is clean-up, and the caller's task is
/// often being cancelled right then (a session that ends because its channel closed). Inside a
/// cancelled task every HTTP call would fail at once and the object would be left behind.
public func removeRetrying(
    _ what: String, _ fields: Logger.Metadata, limit: Duration, pause: Duration, removed: MessageCode, failed: MessageCode,
    logger: Logger, _ remove: @escaping @Sendable () async throws -> Void
) async {
    await Task {
        let deadline = ContinuousClock.now + limit
        while true {
            do {
                try await remove()
                BerthMetrics.containerRemoved()
                logger.log(.debug, removed, "\(what) removed", fields)
                return
            } catch {
                if ContinuousClock.now >= deadline {
                    logger.log(.error, failed, "could not remove \(what): \(error)", fields)
                    return
                }
                try? await Task.sleep(for: pause)
            }
        }
    }.value
}
