/// A backend connection that owns containers or pods: the server's graceful stop asks it to
/// end its programs, then waits until it has removed what it owns.
public protocol ContainerOwner: AnyObject, Sendable {
    /// TERM to every program still running.
    func terminatePrograms() async
    func tearDown() async
    /// The container or pod serving the connection, for the operator console's list.
    var servingContainer: String? { get }
}

extension ContainerOwner {
    public var servingContainer: String? { nil }
}
