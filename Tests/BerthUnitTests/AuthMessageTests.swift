import BerthCore
import Foundation
import Testing
@testable import BerthAuth

@Suite struct AuthMessageTests {
    private let metadata = ConnectionMetadata(
        connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!,
        remoteAddress: RemoteAddress(ip: "::1", port: 5022),
        clientVersion: "SSH-2.0-OpenSSH_9.6",
        username: "alice"
    )

    private func json(_ request: WebhookRequest) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(request.encoded())) as! [String: Any]
    }

    @Test func passwordRequestHasExactlyTheProtocolFields() throws {
        var request = WebhookRequest(metadata)
        request.passwordBase64 = Data("pä ss".utf8).base64EncodedString()
        let body = try json(request)
        #expect(Set(body.keys) == ["username", "remoteAddress", "connectionId", "clientVersion", "passwordBase64"])
        #expect(body["remoteAddress"] as? String == "[::1]:5022")
        #expect(Data(base64Encoded: body["passwordBase64"] as! String) == Data("pä ss".utf8))
    }

    @Test func authzRequestCarriesIdentityAndMapsButNoSecret() throws {
        var enriched = metadata.merging(
            MetadataUpdate(authenticatedUsername: "alice@corp", environment: ["A": MetadataValue(value: "1")], files: ["/f": FileValue(value: [0, 1, 2])]))
        enriched.metadata["k"] = MetadataValue(value: "v", sensitive: true)
        let body = try json(WebhookRequest(enriched, authenticated: true))
        #expect(body["authenticatedUsername"] as? String == "alice@corp")
        #expect(body["passwordBase64"] == nil && body["publicKey"] == nil)
        #expect((body["environment"] as? [String: [String: Any]])?["A"]?["value"] as? String == "1")
        #expect((body["files"] as? [String: [String: Any]])?["/f"]?["value"] as? String == "AAEC")
        #expect((body["metadata"] as? [String: [String: Any]])?["k"]?["sensitive"] as? Bool == true)
    }

    @Test func sensitiveEntriesCanBeLeftOut() throws {
        var enriched = metadata
        enriched.environment = ["TOKEN": MetadataValue(value: "secret", sensitive: true), "PLAIN": MetadataValue(value: "1")]
        let body = try json(WebhookRequest(enriched, authenticated: true, includeSensitive: false))
        let environment = body["environment"] as? [String: [String: Any]]
        #expect(environment?["TOKEN"] == nil)
        #expect(environment?["PLAIN"]?["value"] as? String == "1")
    }

    @Test func replySuccessMustBeABoolean() {
        #expect(throws: WebhookError.self) { try WebhookReply.decode(Array(#"{"authenticatedUsername": "x"}"#.utf8)) }
        #expect(throws: WebhookError.self) { try WebhookReply.decode(Array(#"{"success": 1}"#.utf8)) }
        #expect(throws: WebhookError.self) { try WebhookReply.decode(Array("<html>".utf8)) }
    }

    @Test func replyIgnoresUnknownFieldsAndKeepsIdentityWhenOmitted() throws {
        let reply = try WebhookReply.decode(
            Array(#"{"success": true, "sessionId": "old", "environment": {"E": {"value": "v"}}, "files": {"/x": {"value": "aGk=", "sensitive": true}}}"#.utf8))
        #expect(reply.success)
        let merged = metadata.merging(try reply.update())
        #expect(merged.authenticatedUsername == "alice")
        #expect(merged.environment["E"]?.value == "v")
        #expect(merged.files["/x"] == FileValue(value: Array("hi".utf8), sensitive: true))
    }

    @Test func endpointJoinsBaseURLs() {
        #expect(AuthWebhookClient.endpoint(base: "http://h/auth", "password") == "http://h/auth/password")
        #expect(AuthWebhookClient.endpoint(base: "http://h/auth/", "pubkey") == "http://h/auth/pubkey")
        #expect(AuthWebhookClient.endpoint(base: "http://h:8080", "authz") == "http://h:8080/authz")
    }

    @Test func cryptVerifiesSystemHashes() {
        let sha512 = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1"
        let sha256 = "$5$ZnP.0V0s/Lm29yXN$gW/JoOBY8KcM62AGO9YtpDVEbUBj0FK7.dj2V2mbuYD"
        #expect(CryptPassword.verify(Array("secret".utf8), hash: sha512))
        #expect(CryptPassword.verify(Array("secret".utf8), hash: sha256))
        #expect(!CryptPassword.verify(Array("Secret".utf8), hash: sha512))
        #expect(!CryptPassword.verify(Array("secret".utf8), hash: ""))
        #expect(!CryptPassword.verify(Array("secret".utf8), hash: "*"))
    }

    @Test func pathTemplateExpandsAndRefusesEscapes() {
        #expect(AuthorizedKeys.path(template: "/keys/%u/authorized_keys", username: "bob") == "/keys/bob/authorized_keys")
        #expect(AuthorizedKeys.path(template: "/keys/%%%u", username: "bob") == "/keys/%bob")
        #expect(AuthorizedKeys.path(template: "/keys/%u", username: "../etc") == nil)
        #expect(AuthorizedKeys.path(template: "/keys/%u", username: "a/b") == nil)
        #expect(AuthorizedKeys.path(template: "/keys/%u", username: "") == nil)
    }
}
