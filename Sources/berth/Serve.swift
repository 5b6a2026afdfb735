import ArgumentParser
import BerthConfig
import BerthCore
import BerthObservability
import BerthServer
import Dispatch
import Foundation
import Logging
import ServiceLifecycle

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the SSH server.")

    @Option(name: .long, help: "Configuration file (YAML, or JSON when it ends in .json). Default: $BERTH_CONFIG, else config.yaml.")
    var config: String?

    func run() async throws {
        try await Self.run(configPath: config ?? ConfigPath.fromEnvironment() ?? "config.yaml")
    }

    static func run(configPath: String) async throws {
        let loaded: LoadedConfig
        do {
            loaded = try ConfigLoader.load(path: configPath)
        } catch {
            FileHandle.standardError.write(Data("berth: invalid configuration \(configPath):\n\(error)\n".utf8))
            throw ExitCode(1)
        }
        let logger = try LoggingSetup.bootstrap(loaded.config.log)
        for warning in loaded.warnings {
            logger.log(.warning, "CORE_CONFIG_WARNING", "\(warning)")
        }
        do {
            let limit = try OpenFilesLimit.raiseToHardLimit()
            logger.log(.info, "CORE_OPEN_FILES_LIMIT", "open files limit \(limit.after) (was \(limit.before))")
        } catch {
            logger.log(.warning, "CORE_OPEN_FILES_LIMIT_FAILED", "keeping the open files limit: \(error)")
        }
        // Before the listener opens: a SIGHUP from log rotation that arrives while Berth starts
        // must reopen the file, not end the process (SIGHUP's default) or be lost.
        let rotation = ReopenSignal {
            do {
                try LoggingSetup.reopen()
                logger.log(.info, "LOG_REOPENED", "log file reopened after SIGHUP")
            } catch {
                logger.log(.error, "LOG_ROTATE_FAILED", "cannot reopen the log file: \(error)")
            }
        }
        defer { rotation.cancel() }
        let registry = loaded.config.metrics.enable ? ObservabilityEndpoints.bootstrapMetrics() : nil
        let server: BerthServer
        do {
            server = try BerthServer(config: loaded.config, raw: loaded.raw, registry: registry, logger: logger)
            try await server.start()
        } catch {
            logger.log(.critical, "CORE_STARTUP_FAILED", "cannot start: \(error)")
            FileHandle.standardError.write(Data("berth: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
        var lifecycleLogger = logger
        lifecycleLogger.logLevel = .warning
        let service = BerthService(server: server, gracePeriod: loaded.config.ssh.shutdownTimeout.duration, logger: logger)
        let group = ServiceGroup(configuration: .init(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: lifecycleLogger))
        try await group.run()
    }
}

/// Berth as a swift-service-lifecycle service: runs until SIGTERM/SIGINT asks for a graceful
/// stop, then drains sessions for up to `ssh.shutdownTimeout`.
struct BerthService: Service {
    let server: BerthServer
    let gracePeriod: Duration
    let logger: Logger

    func run() async throws {
        try? await gracefulShutdown()
        logger.log(.notice, "BERTH_SHUTDOWN_REQUESTED", "shutdown requested; stopping gracefully")
        await server.stop(gracePeriod: gracePeriod)
    }
}

/// SIGHUP reopens the log file, so log rotation can move it away.
final class ReopenSignal: @unchecked Sendable {
    private let source: DispatchSourceSignal

    init(onSignal: @escaping @Sendable () -> Void) {
        signal(SIGHUP, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        source.setEventHandler(handler: onSignal)
        source.resume()
    }

    func cancel() { source.cancel() }
}

enum LoggingSetup {
    nonisolated(unsafe) private static var sink: LogSink?

    static func reopen() throws { try sink?.reopen() }

    static func bootstrap(_ config: LogConfig) throws -> Logger {
        let sink: LogSink
        switch config.destination {
        case .file: sink = try LogSink(appendingTo: config.file)
        case .syslog: sink = try LogSink(syslog: config.syslog)
        case .stdout: sink = .standardOutput
        }
        self.sink = sink
        LoggingSystem.bootstrap { label in
            BerthLogHandler(label: label, level: config.level, format: config.format, sink: sink)
        }
        return Logger(label: "berth")
    }
}
