import Synchronization

/// The highest signature counter seen per FIDO key, for the server's lifetime. A counter that
/// does not increase means a cloned authenticator or a replayed signature (WebAuthn §6.1.1);
/// authenticators without a counter always report 0 and are let through.
final class SecurityKeyCounters: Sendable {
    private let last = Mutex<[String: UInt32]>([:])

    func accept(_ key: String, counter: UInt32) -> Bool {
        last.withLock { seen in
            if let previous = seen[key], counter != 0 || previous != 0, counter <= previous { return false }
            seen[key] = counter
            return true
        }
    }
}
