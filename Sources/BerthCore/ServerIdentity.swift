import Foundation
import NIOConcurrencyHelpers

/// Which Berth made a container or pod: `persistence.serverIdentity`, or by default the host
/// name and the SSH listen address. Several Berths may share one engine or namespace; clean-up
/// removes what this identity left behind, and another identity's only once no live server holds
/// it (docs/architecture.md, "Ownership and clean-up").
public enum ServerIdentity {
    public static let label = "berth.server"
    private static let current = NIOLockedValueBox("\(ProcessInfo.processInfo.hostName)_unset")

    /// Set once at start-up, before any container is made. `configured` empty: the default.
    public static func configure(listen: String, configured: String = "") {
        current.withLockedValue { $0 = configured.isEmpty ? "\(ProcessInfo.processInfo.hostName)_\(listen)" : configured }
    }

    public static var name: String { current.withLockedValue { $0 } }
}
