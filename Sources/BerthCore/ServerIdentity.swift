import Foundation

/// Which Berth made a container or pod: `persistence.serverIdentity`, or by default the host
/// name and the SSH listen address. Several Berths may share one engine or namespace; clean-up
/// removes what this identity left behind, and another identity's only once no live server holds
/// it (docs/architecture.md, "Ownership and clean-up"). Made once by the server and handed to
/// the backends it creates.
public struct ServerIdentity: Sendable, Hashable, CustomStringConvertible {
    public static let label = "berth.server"
    public let name: String

    /// `configured` empty: the default, host name and listen address.
    public init(listen: String, configured: String = "") {
        name = configured.isEmpty ? "\(ProcessInfo.processInfo.hostName)_\(listen)" : configured
    }

    public init(name: String) { self.name = name }

    public var description: String { name }
}
