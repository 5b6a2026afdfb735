import Logging

/// Removes a user's container or pod, the same for every backend: retried until `limit` runs
/// out (an engine or API server busy with other removals answers late or with a conflict),
/// counted once removed, and logged with the backend's codes either way. `what` names the
/// object in the log ("container", "pod"), `fields` its identity.
public func removeRetrying(
    _ what: String, _ fields: Logger.Metadata, limit: Duration, pause: Duration, removed: MessageCode, failed: MessageCode,
    logger: Logger, _ remove: () async throws -> Void
) async {
    let deadline = ContinuousClock.now + limit
    while true {
        do {
            try await remove()
            BerthMetrics.containerRemoved()
            logger.log(.debug, removed, "\(what) removed", fields)
            return
        } catch {
            // A cancelled task cannot pause (its sleep returns at once): one try is all it gets.
            if ContinuousClock.now >= deadline || Task.isCancelled {
                logger.log(.error, failed, "could not remove \(what): \(error)", fields)
                return
            }
            try? await Task.sleep(for: pause)
        }
    }
}
