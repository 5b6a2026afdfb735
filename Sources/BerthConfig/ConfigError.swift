import BerthCore

/// Everything wrong with a configuration, each problem with the dotted key path it concerns.
public struct ConfigError: CodedError, Equatable {
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public let path: String
        public let problem: String
        public var description: String { path.isEmpty ? problem : "\(path): \(problem)" }
    }

    public let code: MessageCode = "CORE_CONFIG_ERROR"
    public let problems: [Problem]

    public init(problems: [Problem]) { self.problems = problems }
    public init(path: String, _ problem: String) { self.problems = [Problem(path: path, problem: problem)] }

    public var message: String { problems.map(\.description).joined(separator: "\n") }
    public var description: String { message }
}

/// Collects problems while a whole document is read, so the operator sees all of them at once.
final class ConfigIssues {
    private(set) var problems: [ConfigError.Problem] = []
    private(set) var warnings: [String] = []

    func add(_ path: String, _ problem: String) {
        problems.append(.init(path: path, problem: problem))
    }

    func warn(_ text: String) { warnings.append(text) }

    func throwIfAny() throws {
        if !problems.isEmpty { throw ConfigError(problems: problems) }
    }
}
