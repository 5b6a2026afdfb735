import BerthConfig
import BerthCore
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import ServiceLifecycle

/// What every console request carries: the core storage, the WebSocket hand-over and the
/// client's address (for the sign-in rate limit).
struct ConsoleContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<ConsoleContext>
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
        remoteAddress = source.channel.remoteAddress
    }

    /// Form bodies are small; anything larger is refused before it is read.
    var maxUploadSize: Int { 16 * 1024 }
}

/// The operator console's web server (docs/console.md): its own listener, started and stopped
/// with Berth.
public final class ConsoleServer: Sendable {
    let config: ConsoleConfig
    let registry: LiveSessions
    let signIn: OperatorSignIn
    let oidc: OperatorOIDC?
    let assets: ConsoleAssets
    let recordings: RecordingStore?
    let logger: Logger
    private let running = NIOLockedValueBox<(group: ServiceGroup, task: Task<Void, any Error>)?>(nil)
    private let port = NIOLockedValueBox<Int?>(nil)

    public init(config: ConsoleConfig, audit: AuditConfig, registry: LiveSessions, logger: Logger) throws {
        self.config = config
        self.registry = registry
        self.logger = logger
        signIn = OperatorSignIn(operators: config.operators)
        oidc = try config.oidc.map { try OperatorOIDC(config: $0) }
        assets = try ConsoleAssets.load(xtermDirectory: config.xtermDirectory)
        recordings = try RecordingStore(audit: audit)
        if !assets.hasTerminal {
            logger.log(
                .warning, "CONSOLE_XTERM_MISSING",
                "xterm.js was not found in \(config.xtermDirectory) or \(ConsoleAssets.nodeXtermDirectory); the console cannot show terminals (install Debian's libjs-xterm and node-xterm)"
            )
        }
    }

    /// Beyond this many open connections the console stops accepting (they wait in the backlog),
    /// so whoever reaches the port cannot take the descriptors SSH needs.
    static let maxConnections = 64

    /// The port the console listens on (useful with port 0).
    public var boundPort: Int? { port.withLockedValue { $0 } }

    /// Returns once the listener is up; throws when it cannot bind.
    public func start() async throws {
        let (host, portNumber) = try Self.split(config.listen)
        let router = ConsoleRoutes(server: self).router()
        let server: HTTPServerBuilder
        // An idle HTTP connection is closed after a minute, so half-open requests cannot pile up.
        let upgrade = HTTPServerBuilder.http1WebSocketUpgrade(
            webSocketRouter: router,
            configuration: .init(http1: .init(idleTimeout: .seconds(60)), ws: .init(maxFrameSize: 1 << 16, autoPing: .enabled(timePeriod: .seconds(30)))))
        if config.tls {
            server = try .tls(upgrade, tlsConfiguration: try Self.tlsConfiguration(config))
        } else {
            server = upgrade
        }
        let ready = ReadySignal()
        // Hummingbird's own per-request lines would drown Berth's coded ones.
        var appLogger = logger
        appLogger.logLevel = max(logger.logLevel, .warning)
        let app = Application(
            router: router, server: server,
            configuration: .init(
                address: .hostname(host, port: portNumber), serverName: nil, availableConnectionsDelegate: .maximum(Self.maxConnections, logger: appLogger)),
            onServerRunning: { [port] channel in
                port.withLockedValue { $0 = channel.localAddress?.port }
                ready.done(nil)
            }, logger: appLogger)
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: appLogger))
        let task = Task {
            do {
                try await group.run()
                ready.done(ConsoleStartError(message: "the console stopped before it was listening"))
            } catch {
                ready.done(error)
                throw error
            }
        }
        running.withLockedValue { $0 = (group, task) }
        if let error = await ready.wait() {
            logger.log(.error, "CONSOLE_START_FAILED", "cannot start the console on \(config.listen): \(error)")
            throw ConsoleStartError(message: "cannot start the console on \(config.listen): \(error)")
        }
        logger.log(.notice, "CONSOLE_STARTED", "operator console listening on \(config.tls ? "https" : "http")://\(host):\(boundPort ?? portNumber)")
    }

    public func stop() async {
        guard let (group, task) = running.withLockedValue({ $0 }) else { return }
        registry.closeListeners()
        await group.triggerGracefulShutdown()
        // Open WebSockets would keep a graceful stop waiting; they get a moment, then end.
        let deadline = Task {
            try await Task.sleep(for: .seconds(2))
            task.cancel()
        }
        _ = try? await task.value
        deadline.cancel()
        await oidc?.shutdown()
        await recordings?.shutdown()
    }

    static func split(_ listen: String) throws -> (String, Int) {
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ConsoleStartError(message: "\(listen) is not host:port")
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host, port)
    }

    static func tlsConfiguration(_ config: ConsoleConfig) throws -> TLSConfiguration {
        func pem(_ value: String) throws -> [UInt8] {
            if value.contains("-----BEGIN") { return Array(value.utf8) }
            return Array(try Data(contentsOf: URL(fileURLWithPath: value)))
        }
        let chain = try NIOSSLCertificate.fromPEMBytes(try pem(config.cert)).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: try pem(config.key), format: .pem)
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        tls.minimumTLSVersion = config.tlsVersion == "1.2" ? .tlsv12 : .tlsv13
        return tls
    }
}

struct ConsoleStartError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// One-shot: the first `done` wins, `wait` returns its error (nil for success).
final class ReadySignal: Sendable {
    private let state = NIOLockedValueBox<(result: (any Error)??, waiter: CheckedContinuation<(any Error)?, Never>?)>((nil, nil))

    func done(_ error: (any Error)?) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<(any Error)?, Never>? in
            guard state.result == nil else { return nil }
            state.result = .some(error)
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: error)
    }

    func wait() async -> (any Error)? {
        await withCheckedContinuation { continuation in
            let result = state.withLockedValue { state -> (any Error)?? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let result { continuation.resume(returning: result) }
        }
    }
}
