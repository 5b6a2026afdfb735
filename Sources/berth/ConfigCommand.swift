import ArgumentParser
import BerthConfig
import Foundation

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Work with configuration files.",
        subcommands: [ConfigCheck.self]
    )
}

struct ConfigCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and print the effective configuration with defaults filled in."
    )

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case yaml, json
    }

    @Argument(help: "The configuration file.")
    var file: String

    @Option(name: .long, help: "Output format: yaml or json.")
    var format: OutputFormat = .yaml

    func run() throws {
        try Self.run(path: file, format: format)
    }

    static func run(path: String, format: OutputFormat) throws {
        do {
            let loaded = try ConfigLoader.load(path: path)
            for warning in loaded.warnings {
                FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
            }
            switch format {
            case .yaml: print(ConfigRenderer.yaml(loaded.config), terminator: "")
            case .json: print(ConfigRenderer.json(loaded.config))
            }
        } catch {
            FileHandle.standardError.write(Data("berth: invalid configuration \(path):\n\(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
