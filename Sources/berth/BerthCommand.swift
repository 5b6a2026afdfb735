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
        subcommands: [Serve.self, Keygen.self, ConfigCommand.self, AuditCommand.self, Healthcheck.self, Version.self]
    )

    /// ContainerSSH's command line (`--config FILE`, `--dump-config`) is rewritten to the
    /// equivalent subcommand so existing service files and health checks keep working.
    static func main() async {
        await main(LegacyFlags.translate(Array(CommandLine.arguments.dropFirst())))
    }
}

enum LegacyFlags {
    static func translate(_ arguments: [String]) -> [String] {
        let legacy = ["--dump-config", "--healthcheck"]
        guard let first = arguments.first, first.hasPrefix("--config") || legacy.contains(first) else { return arguments }
        var file: String?
        var dump = false
        var healthcheck = false
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            if argument == "--dump-config" {
                dump = true
            } else if argument == "--healthcheck" {
                healthcheck = true
            } else if argument == "--config", index + 1 < arguments.count {
                file = arguments[index + 1]
                index += 1
            } else if argument.hasPrefix("--config=") {
                file = String(argument.dropFirst("--config=".count))
            }
            index += 1
        }
        let path = file ?? ConfigPath.fromEnvironment() ?? "config.yaml"
        if healthcheck { return ["healthcheck", "--config", path] }
        return dump ? ["config", "check", path] : ["serve", "--config", path]
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
