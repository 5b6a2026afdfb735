/// The highest signature counter seen per FIDO key, kept across restarts in the auth state
/// file. A counter that does not increase means a cloned authenticator or a replayed signature
/// (WebAuthn §6.1.1); authenticators without a counter always report 0 and are let through.
struct SecurityKeyCounters: Sendable {
    let store: AuthStateStore

    func accept(_ key: String, counter: UInt32) -> Bool {
        store.update { state in
            if let previous = state.securityKeyCounters[key], counter != 0 || previous != 0, counter <= previous { return false }
            state.securityKeyCounters[key] = counter
            return true
        }
    }
}
