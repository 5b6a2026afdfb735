import Testing
@testable import BerthConfig

/// The resume keys of `persistence` (docs/configuration.md): read, defaulted, refused by name.
@Suite struct PersistenceConfigTests {
    private let minimalAuth = "auth:\n  password:\n    method: webhook\n    webhook:\n      url: http://127.0.0.1:8080\n"

    private func load(_ yaml: String) throws -> BerthConfig {
        try ConfigReader.read(try ConfigValue.parse(minimalAuth + yaml, format: .yaml, source: "test.yaml"), environment: [:]).config
    }

    private func problems(_ yaml: String) -> [String] {
        do {
            _ = try load(yaml)
            return []
        } catch let error as ConfigError {
            return error.problems.map(\.description)
        } catch {
            return ["unexpected \(error)"]
        }
    }

    @Test func defaultsAndValues() throws {
        let defaults = try load("")
        #expect(defaults.persistence.resumeWindow == .seconds(300) && defaults.persistence.resume == .auto && defaults.persistence.resumeBuffer == 65536)
        let set = try load("persistence:\n  resumeWindow: 90s\n  resume: menu\n  resumeBuffer: 4096\n")
        #expect(set.persistence.resumeWindow == .seconds(90) && set.persistence.resume == .menu && set.persistence.resumeBuffer == 4096)
    }

    @Test func badValuesNameTheirKey() {
        #expect(problems("persistence:\n  resume: sometimes\n").contains { $0.contains("persistence.resume") && $0.contains("auto, menu, never") })
        #expect(problems("persistence:\n  resumeWindow: 0s\n").contains { $0.contains("persistence.resumeWindow") })
        #expect(problems("persistence:\n  resumeBuffer: 10\n").contains { $0.contains("persistence.resumeBuffer") })
        #expect(problems("persistence:\n  resumeBuffer: 2000000\n").contains { $0.contains("persistence.resumeBuffer") })
        #expect(problems("persistence:\n  resumable: yes\n").contains { $0.contains("persistence.resumable") && $0.contains("unknown key") })
    }
}
