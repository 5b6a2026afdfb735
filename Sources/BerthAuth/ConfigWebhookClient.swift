import BerthConfig
import BerthCore
import Foundation
import Logging

/// The per-user configuration webhook (docs/configuration.md, "configserver"): POSTs the authenticated metadata to exactly
/// `configserver.url`; the reply's `config` is a partial configuration for this connection.
public final class ConfigWebhookClient: Sendable {
    private let http: WebhookHTTPClient
    private let config: ConfigServerConfig

    public init(config: ConfigServerConfig, logger: Logger) throws {
        self.config = config
        self.http = try WebhookHTTPClient(config: config.http, metricsName: "config", logger: logger)
    }

    public func shutdown() async { await http.shutdown() }

    public struct Reply: Sendable {
        public let config: ConfigValue
        public let update: MetadataUpdate
    }

    public func fetch(_ metadata: ConnectionMetadata) async throws -> Reply {
        try await http.post(
            url: config.http.url, body: WebhookRequest(metadata, authenticated: true, includeSensitive: config.transmitSensitiveMetadata).encoded(), budget: config.configTimeout
        ) { bytes in
            try Self.decode(bytes)
        }
    }

    /// `config` is required and must be a map; metadata maps are read as in auth replies.
    static func decode(_ bytes: [UInt8]) throws -> Reply {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let value = try? ConfigValue.parse(text, format: .json, source: "config webhook reply"), case .object = value else {
            throw WebhookError(code: "CONFIG_WEBHOOK_DECODE_FAILED", message: "reply is not a JSON object", retryable: true)
        }
        guard let config = value["config"], case .object = config else {
            throw WebhookError(code: "CONFIG_WEBHOOK_DECODE_FAILED", message: "reply has no \"config\" object", retryable: true)
        }
        struct Maps: Decodable {
            var metadata: [String: WebhookRequest.Entry]?
            var environment: [String: WebhookRequest.Entry]?
            var files: [String: WebhookRequest.Entry]?
        }
        let maps = (try? JSONCoding.decode(Maps.self, from: bytes)) ?? Maps()
        let reply = WebhookReply(success: true, authenticatedUsername: nil, metadata: maps.metadata, environment: maps.environment, files: maps.files)
        return Reply(config: config, update: try reply.update())
    }
}
