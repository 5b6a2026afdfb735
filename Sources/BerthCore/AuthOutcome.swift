/// The answer of an authentication layer to one attempt.
public enum AuthOutcome: Sendable, Hashable {
    /// Accepted; carries the metadata enriched by the authenticator.
    case success(ConnectionMetadata)
    /// The credential was checked and rejected. The client may try another method.
    case failure(reason: String)
    /// The credential could not be checked (webhook down, method not configured).
    case unavailable(reason: String)

    public var isSuccess: Bool {
        if case .success = self { return true }
        return false
    }
}
