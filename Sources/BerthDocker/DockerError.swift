import BerthCore

/// A failure talking to the container engine, with the engine's own message where it sent one.
public struct DockerError: CodedError, Equatable {
    public let code: MessageCode
    public let message: String
    /// HTTP status of an API error, when there was one.
    public let status: Int?

    public init(_ code: MessageCode, _ message: String, status: Int? = nil) {
        self.code = code
        self.message = message
        self.status = status
    }

    static func unavailable(_ endpoint: String, _ error: Error) -> DockerError {
        DockerError("DOCKER_ENGINE_UNAVAILABLE", "cannot reach the Docker engine at \(endpoint): \(error)")
    }
}
