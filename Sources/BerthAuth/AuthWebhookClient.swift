import BerthConfig
import BerthCore
import Foundation
import Logging

/// The ContainerSSH authentication webhook: `/password`, `/pubkey` and `/authz` under a base URL.
public final class AuthWebhookClient: Sendable {
    private let http: WebhookHTTPClient
    private let config: WebhookConfig
    private let logger: Logger

    public init(config: WebhookConfig, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.http = try WebhookHTTPClient(config: config.http, metricsName: "auth", logger: logger)
    }

    public func shutdown() async { await http.shutdown() }

    /// `http://h/auth` + `password` → `http://h/auth/password`; one trailing slash is tolerated.
    static func endpoint(base: String, _ suffix: String) -> String {
        (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/" + suffix
    }

    public func password(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        var request = WebhookRequest(metadata)
        request.passwordBase64 = Data(password).base64EncodedString()
        return await ask("password", request, metadata: metadata)
    }

    public func publicKey(_ metadata: ConnectionMetadata, key: String) async -> AuthOutcome {
        var request = WebhookRequest(metadata)
        request.publicKey = key
        return await ask("pubkey", request, metadata: metadata)
    }

    public func authorize(_ metadata: ConnectionMetadata) async -> AuthOutcome {
        await ask("authz", WebhookRequest(metadata, authenticated: true), metadata: metadata)
    }

    private func ask(_ suffix: String, _ request: WebhookRequest, metadata: ConnectionMetadata) async -> AuthOutcome {
        let url = Self.endpoint(base: config.http.url, suffix)
        do {
            let reply = try await http.post(url: url, body: request.encoded(), budget: config.authTimeout) { bytes in
                let reply = try WebhookReply.decode(bytes)
                return (reply.success, try reply.update())
            }
            guard reply.0 else { return .failure(reason: "the auth webhook rejected the credential") }
            return .success(metadata.merging(reply.1))
        } catch {
            let reason = (error as? CodedError)?.message ?? "\(error)"
            logger.forConnection(metadata).log(
                .error, "AUTH_WEBHOOK_UNAVAILABLE", "auth server unavailable: \(reason)", [LogKey.username: "\(metadata.username)", "url": "\(url)"])
            return .unavailable(reason: "auth server unavailable: \(reason)")
        }
    }
}
