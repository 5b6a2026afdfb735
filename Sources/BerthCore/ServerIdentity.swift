import Foundation
import NIOConcurrencyHelpers

/// Which Berth made a container or pod: the host name and the SSH listen address. Several Berths
/// may share one engine or namespace, and at start-up each may clean up only what it left
/// behind itself; a restarted Berth has the same identity as before.
public enum ServerIdentity {
    public static let label = "berth.server"
    private static let current = NIOLockedValueBox("\(ProcessInfo.processInfo.hostName)_unset")

    /// Set once at start-up, before any container is made.
    public static func configure(listen: String) {
        current.withLockedValue { $0 = "\(ProcessInfo.processInfo.hostName)_\(listen)" }
    }

    public static var name: String { current.withLockedValue { $0 } }
}
