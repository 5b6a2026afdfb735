import Foundation
import ArgumentParser
import BerthConfig
import BerthCore

@main
struct BerthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "berth",
        abstract: "An SSH server that gives every user a container of their own.",
        version: BerthVersion.current,
        subcommands: [Serve.self, Keygen.self, ConfigCommand.self, Version.self]
    )

    // ContainerSSH's flags, so existing service files and health checks keep working.
    @Option(name: .customLong("config"), help: "Configuration file (ContainerSSH-compatible alias of `berth serve --config`).")
    var configFile: String?

    @Flag(name: .customLong("dump-config"), help: "Print the effective configuration and exit (alias of `berth config check`).")
    var dumpConfig = false

    mutating func run() async throws {
        guard let path = configFile ?? ConfigPath.fromEnvironment() else {
            throw CleanExit.helpRequest(self)
        }
        if dumpConfig {
            try ConfigCheck.run(path: path, format: .yaml)
        } else {
            try await Serve.run(configPath: path)
        }
    }
}

enum BerthVersion {
    static let current = "0.1.0"
}

enum ConfigPath {
    static func fromEnvironment() -> String? {
        guard let value = ProcessInfo.processInfo.environment["BERTH_CONFIG"], !value.isEmpty else { return nil }
        return value
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print Berth's version.")

    func run() { print("berth \(BerthVersion.current)") }
}
