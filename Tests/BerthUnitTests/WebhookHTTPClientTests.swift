import BerthConfig
import BerthCore
import Logging
import NIOConcurrencyHelpers
import NIOHTTP1
import Testing
@testable import BerthAuth
@testable import BerthObservability

/// The webhook client against real HTTP servers on loopback: what it retries and where it
/// lets a request (with the user's password in its body) go.
@Suite struct WebhookHTTPClientTests {
    /// An HTTP server that answers by path and records what it was asked.
    final class FakeWebhook: Sendable {
        let server: PlainHTTPServer
        private let seen: NIOLockedValueBox<[String]>

        init(_ route: @escaping @Sendable (String) -> PlainHTTPServer.Response) async throws {
            let seen = NIOLockedValueBox<[String]>([])
            self.seen = seen
            server = try await PlainHTTPServer.start(listen: "127.0.0.1:0", what: "fake webhook") { method, path, _ in
                seen.withLockedValue { $0.append("\(method) \(path)") }
                return route(path)
            }
        }

        var base: String { "http://127.0.0.1:\(server.port!)" }
        var requests: [String] { seen.withLockedValue { $0 } }
    }

    private static let ok = PlainHTTPServer.Response(status: .ok, contentType: "application/json", body: Array(#"{"success": true}"#.utf8))

    private static func redirect(_ status: HTTPResponseStatus, to location: String) -> PlainHTTPServer.Response {
        PlainHTTPServer.Response(status: status, body: [], headers: [("Location", location)])
    }

    private func post(_ url: String, allowRedirects: Bool = false, budget: BerthDuration = .seconds(3)) async throws -> String {
        var config = HTTPClientConfig()
        config.url = url
        config.allowRedirects = allowRedirects
        let client = try WebhookHTTPClient(config: config, metricsName: "test", logger: Logger(label: "test"))
        do {
            let reply = try await client.post(url: url, body: Array(#"{"passwordBase64": "c2VjcmV0"}"#.utf8), budget: budget) { String(decoding: $0, as: UTF8.self) }
            await client.shutdown()
            return reply
        } catch {
            await client.shutdown()
            throw error
        }
    }

    private func code(_ body: () async throws -> String) async -> MessageCode? {
        do {
            _ = try await body()
            return nil
        } catch let error as WebhookError {
            return error.code
        } catch {
            return "UNEXPECTED"
        }
    }

    @Test func clientErrorsAreNotRetried() async throws {
        let hook = try await FakeWebhook { _ in PlainHTTPServer.Response(status: .forbidden, body: []) }
        #expect(await code { try await post(hook.base + "/auth") } == "WEBHOOK_INVALID_STATUS")
        #expect(hook.requests == ["POST /auth"])
        await hook.server.stop()
    }

    @Test func serverErrorsAreRetried() async throws {
        // Two failures, then an answer: the retries reach it (the budget is far away).
        let failures = NIOLockedValueBox(2)
        let hook = try await FakeWebhook { _ in
            failures.withLockedValue { left in
                defer { left -= 1 }
                return left > 0 ? PlainHTTPServer.Response(status: .serviceUnavailable, body: []) : Self.ok
            }
        }
        #expect(await code { try await post(hook.base + "/auth", budget: .seconds(60)) } == nil)
        #expect(hook.requests == ["POST /auth", "POST /auth", "POST /auth"])
        await hook.server.stop()
    }

    @Test func serverErrorsEndWhenTheBudgetDoes() async throws {
        let hook = try await FakeWebhook { _ in PlainHTTPServer.Response(status: .serviceUnavailable, body: []) }
        #expect(await code { try await post(hook.base + "/auth", budget: .seconds(1)) } == "WEBHOOK_UNAVAILABLE")
        #expect(!hook.requests.isEmpty)
        await hook.server.stop()
    }

    @Test(arguments: [HTTPResponseStatus.temporaryRedirect, .permanentRedirect, .found])
    func redirectsToAnotherOriginNeverReceiveTheBody(status: HTTPResponseStatus) async throws {
        let elsewhere = try await FakeWebhook { _ in Self.ok }
        let hook = try await FakeWebhook { _ in Self.redirect(status, to: elsewhere.base + "/steal") }
        #expect(await code { try await post(hook.base + "/auth", allowRedirects: true) } == "HTTP_CLIENT_REDIRECT_REFUSED")
        #expect(hook.requests == ["POST /auth"], "a refused redirect is not retried")
        #expect(elsewhere.requests.isEmpty)
        await hook.server.stop()
        await elsewhere.server.stop()
    }

    @Test func redirectsWithinTheOriginAreFollowedWithThePost() async throws {
        let hook = try await FakeWebhook { path in
            switch path {
            case "/auth": return Self.redirect(.permanentRedirect, to: "/v2/auth")
            case "/v2/auth": return Self.redirect(.temporaryRedirect, to: "auth-final")
            default: return Self.ok
            }
        }
        #expect(try await post(hook.base + "/auth", allowRedirects: true) == #"{"success": true}"#)
        #expect(hook.requests == ["POST /auth", "POST /v2/auth", "POST /v2/auth-final"])
        // Without allowRedirects the first answer ends it.
        #expect(await code { try await post(hook.base + "/auth") } == "HTTP_CLIENT_REDIRECTS_DISABLED")
        await hook.server.stop()
    }

    @Test func redirectLoopsEnd() async throws {
        let hook = try await FakeWebhook { _ in Self.redirect(.temporaryRedirect, to: "/again") }
        #expect(await code { try await post(hook.base + "/auth", allowRedirects: true) } == "HTTP_CLIENT_REDIRECT_REFUSED")
        #expect(hook.requests.count == WebhookRedirect.maxHops + 1)
        await hook.server.stop()
    }

    @Test func originComparesSchemeHostAndDefaultPort() {
        #expect(WebhookRedirect.Origin("http://h/a") == WebhookRedirect.Origin("http://H:80/b"))
        #expect(WebhookRedirect.Origin("http://h/a") != WebhookRedirect.Origin("https://h/a"))
        #expect(WebhookRedirect.Origin("http://h:8080/a") != WebhookRedirect.Origin("http://h:8081/a"))
    }
}
