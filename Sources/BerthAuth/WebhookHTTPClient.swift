import AsyncHTTPClient
import BerthConfig
import BerthCore
import Foundation
import Logging
import NIOCore
import NIOSSL

/// Why a webhook could not answer; the message is what operators read in the log.
public struct WebhookError: CodedError {
    public let code: MessageCode
    public let message: String
    /// Worth another attempt (transport, 5xx, body problems); a 4xx answer or a refused redirect is not.
    let retryable: Bool
}

/// JSON POSTs to one webhook, with its TLS and redirect settings, a per-attempt timeout and
/// retries with backoff inside an overall budget (ContainerSSH's HTTP client options).
public final class WebhookHTTPClient: Sendable {
    private let client: HTTPClient
    private let config: HTTPClientConfig
    private let logger: Logger

    private let metricsName: String

    public init(config: HTTPClientConfig, metricsName: String, logger: Logger) throws {
        self.metricsName = metricsName
        self.config = config
        self.logger = logger
        var configuration = HTTPClient.Configuration()
        // Redirects are followed here, not by AsyncHTTPClient, which re-sends a POST body
        // (the password) on 307/308 to whatever host the Location names (WebhookRedirect).
        configuration.redirectConfiguration = .disallow
        if config.url.lowercased().hasPrefix("https://") {
            configuration.tlsConfiguration = try TLSSettings.make(config)
        }
        configuration.timeout = .init(connect: .nanoseconds(config.timeout.nanoseconds), read: .nanoseconds(config.timeout.nanoseconds))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    /// POSTs `body` to `url` until a reply decodes or `budget` runs out. `decode` throwing
    /// counts as a failed attempt.
    public func post<Reply: Sendable>(
        url: String, body: [UInt8], budget: BerthDuration, decode: @Sendable ([UInt8]) throws -> Reply
    ) async throws -> Reply {
        let deadline = ContinuousClock.now + budget.duration
        var delay = Duration.milliseconds(100)
        var attempt = 0
        while true {
            attempt += 1
            do {
                let reply = try decode(try await attemptPost(url: url, body: body))
                BerthMetrics.webhookRequest(metricsName, failed: false)
                return reply
            } catch let error as WebhookError where !error.retryable {
                BerthMetrics.webhookRequest(metricsName, failed: true)
                throw error
            } catch {
                BerthMetrics.webhookRequest(metricsName, failed: true)
                let reason = (error as? WebhookError)?.message ?? "\(error)"
                logger.log(.debug, "WEBHOOK_ATTEMPT_FAILED", "webhook attempt \(attempt) failed: \(reason)", ["url": "\(url)"])
                if ContinuousClock.now + delay >= deadline {
                    throw WebhookError(
                        code: "WEBHOOK_UNAVAILABLE", message: "\(url) did not answer usefully within \(budget) (\(attempt) attempts); last error: \(reason)", retryable: false)
                }
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(2))
            }
        }
    }

    private func attemptPost(url: String, body: [UInt8]) async throws -> [UInt8] {
        var target = url
        for _ in 0...WebhookRedirect.maxHops {
            var request = HTTPClientRequest(url: target)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Accept", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
            let response = try await client.execute(request, timeout: .nanoseconds(config.timeout.nanoseconds))
            let bytes = try await response.body.collect(upTo: 4 << 20)
            let status = response.status.code
            switch status {
            case 200:
                return Array(bytes.readableBytesView)
            case 300..<400 where !config.allowRedirects:
                throw WebhookError(code: "HTTP_CLIENT_REDIRECTS_DISABLED", message: "\(target) answered with a redirect (\(status)) and allowRedirects is false", retryable: false)
            case 300..<400:
                target = try WebhookRedirect.next(from: target, configured: url, status: status, location: response.headers.first(name: "Location"))
            default:
                // A 4xx answer will not change by asking again; 5xx may be a restart or overload.
                throw WebhookError(code: "WEBHOOK_INVALID_STATUS", message: "\(target) answered HTTP \(status)", retryable: status >= 500)
            }
        }
        throw WebhookError(code: "HTTP_CLIENT_REDIRECT_REFUSED", message: "\(url) redirected more than \(WebhookRedirect.maxHops) times", retryable: false)
    }
}

/// TLS client settings from the PEM-or-path options.
enum TLSSettings {
    static func make(_ config: HTTPClientConfig) throws -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = config.tlsVersion == "1.2" ? .tlsv12 : .tlsv13
        // Names were checked at config load (TLSNames); TLS 1.3 suites cannot be restricted in
        // BoringSSL, so only the TLS 1.2 ones go into the list.
        let curves = config.curves.compactMap(TLSNames.curve).map(NIOTLSCurve.init(rawValue:))
        if !curves.isEmpty { tls.curves = curves }
        let suites = config.cipher.compactMap(TLSNames.cipher).filter { !TLSNames.isTLS13($0) }
        if !suites.isEmpty { tls.cipherSuiteValues = suites.map(NIOTLSCipher.init(rawValue:)) }
        if !config.cacert.isEmpty {
            tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(try pem(config.cacert).utf8)))
        }
        if !config.cert.isEmpty {
            tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(try pem(config.cert).utf8)).map { .certificate($0) }
            tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(try pem(config.key).utf8), format: .pem))
        }
        return tls
    }

    /// Values starting with `-----` are PEM text, anything else a file path.
    static func pem(_ value: String) throws -> String {
        if value.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("-----") { return value }
        return try String(contentsOfFile: value, encoding: .utf8)
    }
}
