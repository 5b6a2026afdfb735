import BerthAudit
import BerthAuth
import BerthConfig
import BerthConsole
import BerthCore
import BerthObservability
import BerthSSH
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import BerthSSHKeys
import Prometheus

/// Builds the layer stack from the configuration and runs the SSH front end until stopped.
public final class BerthServer: Sendable {
    private let config: BerthConfig
    private let logger: Logger
    private let frontEnd: SSHFrontEnd
    private let auth: AuthServerLayer
    private let hub: BackendHub
    private let audit: AuditService?
    private let registry: PrometheusCollectorRegistry?
    private let health = HealthState()
    private let endpoints = NIOLockedValueBox<ObservabilityEndpoints?>(nil)
    private let console: ConsoleServer?

    public init(config: BerthConfig, raw: ConfigValue, registry: PrometheusCollectorRegistry?, logger: Logger) throws {
        self.registry = registry
        self.config = config
        self.logger = logger
        let hostKeys = try Self.hostKeys(config.ssh, logger: logger)
        let hostCertificates = try HostKeyLoader.loadCertificates(entries: config.ssh.hostCertificates, hostKeys: hostKeys)
        var settings = try SSHFrontEndSettings(config: config.ssh, hostKeys: hostKeys, hostCertificates: hostCertificates)
        settings.loginProtection = config.auth.protection
        let keyboard = config.auth.keyboardInteractive
        settings.keyboardInteractiveSignIn = keyboard.method == .oauth2
        settings.keyboardInteractivePassword = keyboard.method == .disabled && keyboard.passwordPrompt && config.auth.password.method != .disabled
        let hub = try BackendHub(config: config, raw: raw, logger: logger)
        self.hub = hub
        auth = try AuthServerLayer(config: config.auth, stateDirectory: config.ssh.stateDirectory, next: hub, logger: logger)
        let (audited, audit) = try AuditServerLayer.make(next: auth, config: config.audit, logger: logger)
        self.audit = audit
        var top: any ServerHandler = audited
        if config.console.enable {
            let registry = LiveSessions()
            top = ConsoleServerLayer(next: audited, registry: registry)
            console = try ConsoleServer(config: config.console, audit: config.audit, registry: registry, logger: logger)
        } else {
            console = nil
        }
        frontEnd = SSHFrontEnd(settings: settings, handler: MetricsServerLayer(next: top), logger: logger, group: MultiThreadedEventLoopGroup.singleton)
    }

    private static func hostKeys(_ ssh: SSHConfig, logger: Logger) throws -> [SSHPrivateKey] {
        if ssh.hostkeys.isEmpty {
            return try HostKeyLoader.loadOrGenerate(stateDirectory: ssh.stateDirectory, logger: logger)
        }
        return try HostKeyLoader.load(entries: ssh.hostkeys)
    }

    /// Starts listening; returns once connections are accepted.
    public func start() async throws {
        var pages: [ObservabilityEndpoints.Page] = []
        let oauth2 = config.auth.keyboardInteractive.oauth2
        if config.auth.keyboardInteractive.method == .oauth2 && oauth2.usesAuthorizationCode {
            let page = OAuth2RedirectPage(oauth2.redirect)
            pages.append(
                .init(listen: oauth2.redirect.listen, what: "auth.keyboardInteractive.oauth2.redirect.listen") { _, path, query in
                    let response = page.respond(path: path, query: query)
                    // The code is single-use and short-lived; no cache should keep it.
                    return .init(
                        status: .init(statusCode: response.status), contentType: response.contentType, body: response.body,
                        headers: [("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"), ("X-Content-Type-Options", "nosniff")])
                })
        }
        let started = try await ObservabilityEndpoints.start(metrics: config.metrics, health: config.health, registry: registry, state: health, pages: pages)
        endpoints.withLockedValue { $0 = started }
        await audit?.start()
        try await console?.start()
        try await frontEnd.start()
        health.set(serving: true)
    }

    /// Graceful stop (SIGTERM/SIGINT): stop accepting, let sessions finish until the deadline,
    /// then close what is left and release shared clients.
    public func stop(gracePeriod: Duration) async {
        health.set(serving: false)
        await frontEnd.shutdown(deadline: .now + gracePeriod)
        await console?.stop()
        await endpoints.withLockedValue { $0 }?.stop()
        await auth.close()
        await hub.close()
        await audit?.shutdown()
        logger.log(.notice, "BERTH_STOPPED", "Berth stopped")
    }
}
