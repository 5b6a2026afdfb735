@testable import BerthConfig

/// The smallest valid `auth` section, for tests about another part of the configuration.
let minimalAuthYAML = "auth:\n  password:\n    method: webhook\n    webhook:\n      url: http://127.0.0.1:8080\n"

/// Reads `yaml` as a whole configuration file.
func readConfig(_ yaml: String, environment: [String: String] = [:]) throws -> (config: BerthConfig, warnings: [String]) {
    try ConfigReader.read(try ConfigValue.parse(yaml, format: .yaml, source: "test.yaml"), environment: environment)
}

/// The problems `yaml` is refused with; empty when it loads.
func configProblems(_ yaml: String) -> [String] {
    do {
        _ = try readConfig(yaml)
        return []
    } catch let error as ConfigError {
        return error.problems.map(\.description)
    } catch {
        return ["unexpected \(error)"]
    }
}
