import BerthConfig
import Foundation

/// The page an OAuth2 provider sends the browser back to in the authorization-code flow: it
/// shows `state|code` for the user to paste into the SSH prompt, as ContainerSSH's does. It holds
/// no secret and talks to no sign-in; the state check happens when the code is pasted.
/// docs/configuration.md, "OAuth2 / OIDC".
public struct OAuth2RedirectPage: Sendable {
    public struct Response: Sendable, Equatable {
        public let status: Int
        public let contentType: String
        public let body: [UInt8]
    }

    private let webroot: String

    public init(_ config: OAuth2RedirectConfig) {
        webroot = config.webroot
    }

    public func respond(path: String, query: String) -> Response {
        var components = URLComponents()
        // A query string is form-encoded: `+` is a space (URLComponents leaves it).
        components.percentEncodedQuery = query.replacingOccurrences(of: "+", with: "%20")
        let items = components.queryItems ?? []
        func value(_ name: String) -> String? { items.first { $0.name == name }?.value }
        if path != "/" && path != "/index.html" {
            return staticFile(path)
        }
        if let error = value("error") {
            let description = value("error_description").map { ": \($0)" } ?? ""
            return html(
                400, title: "Sign-in refused",
                body: "<p>The provider refused the sign-in (<code>\(escape(error + description))</code>). Return to your SSH client and try again.</p>")
        }
        guard let code = value("code"), let state = value("state"), !code.isEmpty, !state.isEmpty else {
            return html(400, title: "No code", body: "<p>This page shows the code of an SSH sign-in; the provider did not send one.</p>")
        }
        let pasted = "\(state)|\(code)"
        if !webroot.isEmpty, let template = try? String(contentsOfFile: webroot + "/index.html", encoding: .utf8) {
            var page = template
            for placeholder in ["{{ .Code }}", "{{.Code}}"] { page = page.replacingOccurrences(of: placeholder, with: escape(pasted)) }
            return Response(status: 200, contentType: "text/html; charset=utf-8", body: Array(page.utf8))
        }
        return html(
            200, title: "Your sign-in code",
            body: """
                <p>Copy this code and paste it into your SSH client:</p>
                <p><code id="code">\(escape(pasted))</code></p>
                """)
    }

    private func staticFile(_ path: String) -> Response {
        let parts = path.split(separator: "/").map(String.init)
        guard !webroot.isEmpty, !parts.isEmpty, !parts.contains(where: { $0 == ".." || $0 == "." || $0.hasPrefix(".") || $0.contains("\\") }),
            let data = FileManager.default.contents(atPath: webroot + "/" + parts.joined(separator: "/"))
        else { return html(404, title: "Not found", body: "<p>Not found.</p>") }
        let types = ["css": "text/css", "js": "text/javascript", "png": "image/png", "svg": "image/svg+xml", "ico": "image/x-icon", "html": "text/html; charset=utf-8"]
        let type = types[(parts.last! as NSString).pathExtension.lowercased()] ?? "application/octet-stream"
        return Response(status: 200, contentType: type, body: Array(data))
    }

    private func html(_ status: Int, title: String, body: String) -> Response {
        let page = """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(title)</title></head>
            <body><main><h1>\(title)</h1>
            \(body)
            </main></body></html>

            """
        return Response(status: status, contentType: "text/html; charset=utf-8", body: Array(page.utf8))
    }

    private func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#39;")
    }
}
