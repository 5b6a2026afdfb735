import BerthAuth
import BerthConfig
import BerthCore
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix

/// The console's pages and API (docs/console.md). Every page but sign-in needs an operator
/// session; every state change needs the session's CSRF token; ending needs the admin role.
struct ConsoleRoutes: Sendable {
    let server: ConsoleServer
    static let cookieName = "berth_console"
    static let signInCookie = "berth_console_signin"
    static let oidcCookie = "berth_console_oidc"

    var logger: Logger { server.logger }

    func router() -> Router<ConsoleContext> {
        let router = Router(context: ConsoleContext.self)
        router.add(middleware: SecurityHeaders())
        router.get("/") { request, context in
            self.operatorSession(request) == nil ? Self.redirect("/signin") : Self.redirect("/sessions")
        }
        router.get("/signin") { request, context in self.signInPage(request, failed: false) }
        router.post("/signin") { request, context in try await self.postSignIn(request, context) }
        router.get("/oidc/start") { request, context in await self.startOIDC(request) }
        router.get("/oidc/callback") { request, context in await self.oidcCallback(request, context) }
        router.post("/signout") { request, context in try await self.postSignOut(request, context) }
        router.get("/sessions") { request, context in try self.page("sessions.html", request) }
        router.get("/watch") { request, context in try self.page("watch.html", request) }
        router.get("/recordings") { request, context in try self.page("recordings.html", request) }
        router.get("/replay") { request, context in try self.page("replay.html", request) }
        router.get("/static/:file") { request, context in try self.asset(context.parameters.get("file") ?? "") }
        router.get("/xterm/xterm.js") { request, context in try self.xterm(server.assets.xtermScript) }
        router.get("/xterm/xterm.css") { request, context in try self.xterm(server.assets.xtermStyle) }
        router.get("/api/sessions") { request, context in
            _ = try self.requireSession(request)
            return Self.json(LiveSnapshot.make(server.registry))
        }
        router.post("/api/end") { request, context in try await self.postEnd(request, context) }
        router.get("/api/recordings") { request, context in try await self.listRecordings(request) }
        router.get("/api/recordings/:name/cast") { request, context in try await self.cast(request, context) }
        router.get("/api/recordings/:name/download") { request, context in try await self.download(request, context) }
        router.ws("/ws/sessions", shouldUpgrade: { request, context in try self.upgrade(request) }) { inbound, outbound, context in
            try await ConsoleSockets.list(registry: server.registry, inbound: inbound, outbound: outbound)
        }
        router.ws(
            "/ws/watch",
            shouldUpgrade: { request, context in
                let decision = try self.upgrade(request)
                guard self.watchTarget(request) != nil else { throw HTTPError(.notFound, message: "no such session") }
                return decision
            }
        ) { inbound, outbound, context in
            guard let operatorSession = self.operatorSession(context.request), let target = self.watchTarget(context.request) else { return }
            try await ConsoleSockets.watch(server: server, operator: operatorSession, target: target, inbound: inbound, outbound: outbound)
        }
        return router
    }

    // MARK: Sessions and checks

    func operatorSession(_ request: Request) -> OperatorSignIn.Session? {
        server.signIn.session(token: request.cookies[Self.cookieName]?.value)
    }

    func requireSession(_ request: Request) throws -> OperatorSignIn.Session {
        guard let session = operatorSession(request) else { throw HTTPError(.unauthorized, message: "sign in first") }
        return session
    }

    /// Cross-site requests are refused outright: a browser always names the page's origin.
    func sameOrigin(_ request: Request) -> Bool {
        guard let origin = request.headers[.origin] else { return true }
        let scheme = server.config.tls ? "https" : "http"
        return request.head.authority.map { origin == "\(scheme)://\($0)" } ?? false
    }

    func upgrade(_ request: Request) throws -> RouterShouldUpgrade {
        guard sameOrigin(request) else {
            logger.log(.warning, "CONSOLE_CROSS_ORIGIN", "refused a WebSocket from another origin", ["origin": "\(request.headers[.origin] ?? "")"])
            throw HTTPError(.forbidden, message: "cross-origin request")
        }
        _ = try requireSession(request)
        return .upgrade([:])
    }

    func watchTarget(_ request: Request) -> (LiveConnection, LiveSession)? {
        let query = request.uri.queryParameters
        guard let connectionID = query.get("connection"), let channel = query.get("channel").flatMap({ UInt64($0) }),
            let connection = server.registry.connection(connectionID), let session = connection.session(channel)
        else { return nil }
        return (connection, session)
    }

    /// A state change: signed in, same origin, and the session's CSRF token in the form.
    func stateChange(_ request: inout Request, _ context: ConsoleContext) async throws -> (OperatorSignIn.Session, [String: String]) {
        let session = try requireSession(request)
        let form = try await Self.form(&request, context)
        guard sameOrigin(request), let token = form["csrf"] ?? request.headers[HTTPField.Name("X-CSRF-Token")!], OperatorSignIn.same(token, session.csrf) else {
            logger.log(.warning, "CONSOLE_CSRF_REFUSED", "refused a state change without a valid CSRF token", ["operator": "\(session.username)", "path": "\(request.uri.path)"])
            throw HTTPError(.forbidden, message: "missing or wrong CSRF token")
        }
        return (session, form)
    }

    // MARK: Sign-in

    func signInPage(_ request: Request, failed: Bool, status: HTTPResponse.Status = .ok, message: String = "") -> Response {
        let token = OperatorSignIn.randomToken()
        let error = failed ? "<p class=\"error\" role=\"alert\" id=\"signin-error\">\(Self.escape(message))</p>" : ""
        let oidc =
            server.oidc.map {
                "<p><a class=\"button\" id=\"signin-oidc\" href=\"/oidc/start\">Sign in with \(Self.escape($0.providerName))</a></p>"
            } ?? ""
        var response = render("signin.html", ["csrf": token, "error": error, "oidc": oidc], status: status, raw: ["error", "oidc"])
        response.setCookie(cookie(Self.signInCookie, token, path: "/signin", maxAge: 600))
        return response
    }

    func postSignIn(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        var request = request
        let form = try await Self.form(&request, context)
        // Sign-in CSRF: the form's token must match the cookie set with the form.
        guard sameOrigin(request), let token = form["csrf"], let cookieToken = request.cookies[Self.signInCookie]?.value, OperatorSignIn.same(token, cookieToken) else {
            logger.log(.warning, "CONSOLE_CSRF_REFUSED", "refused a sign-in without the form's token", ["path": "/signin"])
            return signInPage(request, failed: true, status: .forbidden, message: "The form expired; please try again.")
        }
        let address = context.remoteAddress?.ipAddress ?? "unknown"
        let username = form["username"] ?? ""
        switch await server.signIn.signIn(username: username, password: form["password"] ?? "", from: address) {
        case .rateLimited:
            logger.log(.warning, "CONSOLE_SIGNIN_RATE_LIMITED", "too many failed sign-ins from \(address); refused without checking", ["operator": "\(username)"])
            return signInPage(request, failed: true, status: .tooManyRequests, message: "Too many failed sign-ins from your address; wait a few minutes.")
        case .refused:
            logger.log(.notice, "CONSOLE_SIGNIN_FAILED", "failed console sign-in from \(address)", ["operator": "\(username)"])
            return signInPage(request, failed: true, status: .unauthorized, message: "Wrong user name or password.")
        case .signedIn(let session):
            logger.log(.notice, "CONSOLE_SIGNIN", "operator signed in to the console from \(address)", ["operator": "\(session.username)", "role": "\(session.role.rawValue)"])
            var response = Self.redirect("/sessions")
            response.setCookie(cookie(Self.cookieName, session.token, path: "/", maxAge: nil))
            response.setCookie(cookie(Self.signInCookie, "", path: "/signin", maxAge: 0))
            return response
        }
    }

    /// A link, not a form: the console's CSP (`form-action 'self'`) would stop a form's
    /// redirect to the provider.
    func startOIDC(_ request: Request) async -> Response {
        guard let oidc = server.oidc else { return Response(status: .notFound) }
        do {
            let (token, url) = try await oidc.start()
            var response = Self.redirect(url)
            // Lax, not Strict: it must come back with the provider's cross-site redirect.
            response.setCookie(Cookie(name: Self.oidcCookie, value: token, maxAge: 600, path: "/oidc", secure: true, httpOnly: true, sameSite: .lax))
            return response
        } catch {
            logger.log(.error, "CONSOLE_OIDC_PROVIDER_ERROR", "cannot start an OIDC sign-in: \(error)")
            return signInPage(request, failed: true, status: .badGateway, message: "The sign-in provider cannot be reached; try again later.")
        }
    }

    func oidcCallback(_ request: Request, _ context: ConsoleContext) async -> Response {
        guard let oidc = server.oidc else { return Response(status: .notFound) }
        let address = context.remoteAddress?.ipAddress ?? "unknown"
        var response = await oidcOutcome(oidc, request, address: address)
        response.setCookie(Cookie(name: Self.oidcCookie, value: "", maxAge: 0, path: "/oidc", secure: true, httpOnly: true, sameSite: .lax))
        return response
    }

    private func oidcOutcome(_ oidc: OperatorOIDC, _ request: Request, address: String) async -> Response {
        let query = request.uri.queryParameters
        // The cookie ties the callback to the browser that started; the state to that sign-in.
        guard let pending = oidc.take(token: request.cookies[Self.oidcCookie]?.value, state: query.get("state")) else {
            logger.log(.warning, "CONSOLE_OIDC_STATE_MISMATCH", "refused an OIDC callback whose state is not a sign-in this browser started, from \(address)")
            return signInPage(request, failed: true, status: .forbidden, message: "This sign-in was not started here or has expired; please try again.")
        }
        if let error = query.get("error") {
            logger.log(.notice, "CONSOLE_OIDC_REFUSED", "the OIDC provider refused the sign-in from \(address): \(error)")
            return signInPage(request, failed: true, status: .forbidden, message: "The sign-in provider refused the sign-in (\(Self.cleanReason(error))).")
        }
        let identity: OIDCCodeExchange.Identity
        do {
            identity = try await oidc.exchange.finish(code: query.get("code") ?? "", pending: pending)
        } catch {
            if error.kind == .refused {
                logger.log(.warning, "CONSOLE_OIDC_REFUSED", "OIDC sign-in from \(address) refused: \(error)")
                return signInPage(request, failed: true, status: .forbidden, message: "The sign-in could not be verified.")
            }
            logger.log(.error, "CONSOLE_OIDC_PROVIDER_ERROR", "OIDC sign-in from \(address) failed: \(error)")
            return signInPage(request, failed: true, status: .badGateway, message: "The sign-in provider cannot be reached; try again later.")
        }
        guard let account = server.signIn.oidcOperator(identity.username) else {
            logger.log(
                .warning, "CONSOLE_OIDC_NOT_OPERATOR", "an OIDC identity that is not a console operator was refused, from \(address)",
                ["operator": "\(identity.username)", "subject": "\(identity.subject)"])
            return signInPage(request, failed: true, status: .forbidden, message: "\(identity.username) is not a console operator.")
        }
        let session = server.signIn.newSession(account)
        logger.log(
            .notice, "CONSOLE_SIGNIN", "operator signed in to the console through OIDC from \(address)",
            ["operator": "\(session.username)", "role": "\(session.role.rawValue)", "subject": "\(identity.subject)"])
        // A page that moves on by itself, not a redirect: after the provider's cross-site
        // redirect, a redirect chain would not carry the SameSite=Strict session cookie.
        var response = render("signedin.html", [:])
        response.setCookie(cookie(Self.cookieName, session.token, path: "/", maxAge: nil))
        return response
    }

    func postSignOut(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        var request = request
        let (session, _) = try await stateChange(&request, context)
        server.signIn.signOut(token: session.token)
        var response = Self.redirect("/signin")
        response.setCookie(cookie(Self.cookieName, "", path: "/", maxAge: 0))
        return response
    }

    /// Secure whenever the console speaks TLS; browsers treat http://127.0.0.1 as secure too,
    /// so the flag is set there as well (docs/console.md, "Sign-in").
    func cookie(_ name: String, _ value: String, path: String, maxAge: Int?) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: path, secure: true, httpOnly: true, sameSite: .strict)
    }

    // MARK: Pages and files

    func page(_ name: String, _ request: Request) throws -> Response {
        guard let session = operatorSession(request) else { return Self.redirect("/signin") }
        return render(
            name,
            [
                "csrf": session.csrf, "operator": session.username, "role": session.role.rawValue,
                "xterm": server.assets.hasTerminal ? "yes" : "no",
                "recordings": server.recordings == nil ? "no" : "yes",
            ])
    }

    func render(_ name: String, _ values: [String: String], status: HTTPResponse.Status = .ok, raw: Set<String> = []) -> Response {
        guard let file = server.assets.files[name] else { return Response(status: .notFound) }
        var text = String(buffer: file.bytes)
        for (key, value) in values { text = text.replacingOccurrences(of: "{{\(key)}}", with: raw.contains(key) ? value : Self.escape(value)) }
        return Response(
            status: status, headers: [.contentType: file.contentType, .cacheControl: "no-store"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    func asset(_ name: String) throws -> Response {
        guard !name.hasSuffix(".html"), let file = server.assets.files[name] else { throw HTTPError(.notFound) }
        return Response(status: .ok, headers: [.contentType: file.contentType, .cacheControl: "no-cache"], body: ResponseBody(byteBuffer: file.bytes))
    }

    func xterm(_ file: ConsoleAssets.File?) throws -> Response {
        guard let file else { throw HTTPError(.notFound, message: "xterm.js is not installed on the server (Debian: libjs-xterm and node-xterm)") }
        return Response(status: .ok, headers: [.contentType: file.contentType, .cacheControl: "max-age=3600"], body: ResponseBody(byteBuffer: file.bytes))
    }

    // MARK: Ending

    func postEnd(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        var request = request
        let (session, form) = try await stateChange(&request, context)
        guard session.role == .admin else {
            logger.log(.warning, "CONSOLE_FORBIDDEN", "a read-only operator tried to end a session", ["operator": "\(session.username)"])
            throw HTTPError(.forbidden, message: "only admin operators can end sessions")
        }
        let reason = Self.cleanReason(form["reason"] ?? "")
        guard let connectionID = form["connection"], let connection = server.registry.connection(connectionID) else {
            throw HTTPError(.notFound, message: "no such connection")
        }
        if let channelText = form["channel"], !channelText.isEmpty {
            guard let channel = UInt64(channelText), let live = connection.session(channel) else { throw HTTPError(.notFound, message: "no such session") }
            logger.log(
                .notice, "CONSOLE_SESSION_ENDED", "an operator ended a session",
                ["operator": "\(session.username)", LogKey.connectionID: "\(connection.id.hex)", LogKey.channelID: "\(channel)", LogKey.reason: "\(reason)"])
            await live.end(reason: reason)
        } else {
            guard connection.end(reason: reason) else { throw HTTPError(.conflict, message: "the connection is not authenticated yet") }
            logger.log(
                .notice, "CONSOLE_CONNECTION_ENDED", "an operator ended a connection",
                ["operator": "\(session.username)", LogKey.connectionID: "\(connection.id.hex)", LogKey.reason: "\(reason)"])
        }
        return Self.json(["ok": true])
    }

    /// What the user will read: one printable line of at most 200 characters.
    static func cleanReason(_ text: String) -> String {
        let printable = String(text.unicodeScalars.filter { !CharacterSet.controlCharacters.contains($0) }.map(Character.init))
        let trimmed = printable.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? "no reason given" : String(trimmed.prefix(200))
    }

    // MARK: Recordings

    func listRecordings(_ request: Request) async throws -> Response {
        _ = try requireSession(request)
        guard let store = server.recordings else { return Self.json(RecordingList(available: false, recordings: [])) }
        let query = request.uri.queryParameters
        let user = query.get("user") ?? ""
        let connection = query.get("connection") ?? ""
        let date = query.get("date") ?? ""
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        formatter.timeZone = TimeZone(identifier: "UTC")
        let known = server.registry.recentUsers
        let all: [RecordingStore.Entry]
        do {
            all = try await store.list(knownUsers: known)
        } catch {
            logger.log(.error, "CONSOLE_RECORDINGS_UNAVAILABLE", "cannot list the recordings: \(error)")
            throw HTTPError(.badGateway, message: "the audit storage cannot be listed")
        }
        let entries = all.filter { entry in
            (user.isEmpty || entry.username.localizedCaseInsensitiveContains(user)) && (connection.isEmpty || entry.connection.hasPrefix(connection.lowercased()))
                && (date.isEmpty || formatter.string(from: entry.modified) == date)
        }
        return Self.json(RecordingList(available: true, recordings: entries))
    }

    func cast(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        let session = try requireSession(request)
        guard let store = server.recordings, let name = context.parameters.get("name") else { throw HTTPError(.notFound) }
        let channel = request.uri.queryParameters.get("channel").flatMap { UInt64($0) }
        let result: Result<String, RecordingError>
        do {
            result = try await store.asciicast(name, channel: channel)
        } catch {
            logger.log(.error, "CONSOLE_RECORDINGS_UNAVAILABLE", "cannot read \(name): \(error)")
            throw HTTPError(.badGateway, message: "the audit storage cannot be read")
        }
        switch result {
        case .success(let text):
            logger.log(.info, "CONSOLE_REPLAY", "an operator replays a recording", ["operator": "\(session.username)", "recording": "\(name)"])
            return Response(status: .ok, headers: [.contentType: "application/x-asciicast", .cacheControl: "no-store"], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
        case .failure(.notFound): throw HTTPError(.notFound, message: "no such recording")
        case .failure(.noSession): throw HTTPError(.notFound, message: "the log has no session with a program")
        case .failure(.undecodable(let reason)):
            logger.log(.warning, "CONSOLE_RECORDING_UNREADABLE", "cannot decode \(name): \(reason)")
            throw HTTPError(.unprocessableContent, message: "the log cannot be decoded")
        }
    }

    func download(_ request: Request, _ context: ConsoleContext) async throws -> Response {
        let session = try requireSession(request)
        guard let store = server.recordings, let name = context.parameters.get("name") else { throw HTTPError(.notFound) }
        let original: [UInt8]?
        do {
            original = try await store.original(name)
        } catch {
            logger.log(.error, "CONSOLE_RECORDINGS_UNAVAILABLE", "cannot read \(name): \(error)")
            throw HTTPError(.badGateway, message: "the audit storage cannot be read")
        }
        guard let data = original else { throw HTTPError(.notFound) }
        logger.log(.info, "CONSOLE_DOWNLOAD", "an operator downloads a recording", ["operator": "\(session.username)", "recording": "\(name)"])
        return Response(
            status: .ok,
            headers: [.contentType: "application/octet-stream", .contentDisposition: "attachment; filename=\"\(name)\"", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    // MARK: Helpers

    static func redirect(_ location: String) -> Response {
        Response(status: .seeOther, headers: [.location: location, .cacheControl: "no-store"])
    }

    static func json(_ value: some Encodable) -> Response {
        let data = (try? JSONCoding.encode(value)) ?? Data("{}".utf8)
        return Response(status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func form(_ request: inout Request, _ context: ConsoleContext) async throws -> [String: String] {
        let body = try await request.collectBody(upTo: context.maxUploadSize)
        return FormDecoding.decode(String(buffer: body))
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
            .replacingOccurrences(of: "\"", with: "&quot;").replacingOccurrences(of: "'", with: "&#39;")
    }
}

struct RecordingList: Encodable {
    let available: Bool
    let recordings: [RecordingStore.Entry]
}

/// `application/x-www-form-urlencoded`, as browsers send forms.
enum FormDecoding {
    static func decode(_ body: String) -> [String: String] {
        var result: [String: String] = [:]
        for pair in body.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = unescape(parts[0]) else { continue }
            let value = parts.count > 1 ? unescape(parts[1]) : ""
            if let value, result[key] == nil { result[key] = value }
        }
        return result
    }

    private static func unescape(_ text: Substring) -> String? {
        text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}

/// Headers every console response carries: no framing, no sniffing, scripts only from the console.
struct SecurityHeaders: RouterMiddleware {
    typealias Context = ConsoleContext

    func handle(_ request: Request, context: ConsoleContext, next: (Request, ConsoleContext) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as HTTPError {
            response = try error.response(from: request, context: context)
        }
        // xterm.js's DOM renderer writes its theme into a <style> element, hence inline styles.
        response.headers[.contentSecurityPolicy] =
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        response.headers[.xContentTypeOptions] = "nosniff"
        // `no-referrer` would make browsers send `Origin: null` on form posts, which the origin check refuses.
        response.headers[HTTPField.Name("Referrer-Policy")!] = "same-origin"
        response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
        return response
    }
}
