import BerthConfig
import Foundation
import Testing

@testable import BerthAuth

@Suite struct OAuth2CodeFlowTests {
    @Test func pkceChallengeMatchesRFC7636AppendixB() {
        #expect(OAuth2HTTP.AuthorizationRequest.challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM")
    }

    @Test func authorizationLinkCarriesStateChallengeAndNonce() throws {
        let request = OAuth2HTTP.AuthorizationRequest(
            endpoint: "https://idp.example/auth?tenant=lab", clientId: "berth", redirectURI: "https://berth.example:8080/", scopes: ["openid", "email"])
        let items = try #require(URLComponents(string: request.url)?.queryItems)
        let query = Dictionary(items.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
        #expect(query["tenant"] == "lab" && query["response_type"] == "code" && query["client_id"] == "berth")
        #expect(query["redirect_uri"] == "https://berth.example:8080/" && query["scope"] == "openid email")
        #expect(query["state"] == request.state && query["nonce"] == request.nonce)
        #expect(query["code_challenge"] == OAuth2HTTP.AuthorizationRequest.challenge(request.verifier) && query["code_challenge_method"] == "S256")
        // RFC 7636 §4.1: 43 to 128 characters of the unreserved set.
        #expect((43...128).contains(request.verifier.count))
        #expect(request.verifier.allSatisfy { $0.isLetter || $0.isNumber || "-._~".contains($0) })
        let other = OAuth2HTTP.AuthorizationRequest(endpoint: "https://idp.example/auth", clientId: "berth", redirectURI: "https://b/", scopes: [])
        #expect(other.state != request.state && other.verifier != request.verifier)
        #expect(URLComponents(string: other.url)?.queryItems?.contains { $0.name == "nonce" || $0.name == "scope" } == false)
    }

    @Test func redirectPageShowsTheCodeEscaped() {
        let page = OAuth2RedirectPage(OAuth2RedirectConfig())
        let shown = page.respond(path: "/", query: "code=a%3Cscript%3E&state=s+1")
        #expect(shown.status == 200)
        #expect(String(decoding: shown.body, as: UTF8.self).contains("<code id=\"code\">s 1|a&lt;script&gt;</code>"))
        #expect(page.respond(path: "/", query: "").status == 400)
        #expect(page.respond(path: "/", query: "code=x").status == 400)
        let refused = page.respond(path: "/", query: "error=access_denied&error_description=%3Cb%3E")
        #expect(refused.status == 400 && String(decoding: refused.body, as: UTF8.self).contains("access_denied: &lt;b&gt;"))
        // Without a webroot nothing else is served.
        #expect(page.respond(path: "/favicon.ico", query: "").status == 404)
    }

    @Test func webrootServesItsFilesAndNothingOutside() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("redirect-\(UUID())")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("css"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try "<p>{{ .Code }}</p><i>{{.Code}}</i>".write(to: root.appendingPathComponent("index.html"), atomically: true, encoding: .utf8)
        try "b{}".write(to: root.appendingPathComponent("css/lab.css"), atomically: true, encoding: .utf8)
        try "secret".write(to: root.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        var config = OAuth2RedirectConfig()
        config.webroot = root.path
        let page = OAuth2RedirectPage(config)
        #expect(String(decoding: page.respond(path: "/", query: "state=s&code=%22c").body, as: UTF8.self) == "<p>s|&quot;c</p><i>s|&quot;c</i>")
        let css = page.respond(path: "/css/lab.css", query: "")
        #expect(css.status == 200 && css.contentType == "text/css" && css.body == Array("b{}".utf8))
        for path in ["/../index.html", "/css/../../x", "/.env", "/css/./lab.css", "/nope"] {
            #expect(page.respond(path: path, query: "").status == 404, "\(path)")
        }
    }
}
