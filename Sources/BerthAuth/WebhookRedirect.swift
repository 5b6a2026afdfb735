import BerthCore
import Foundation

/// Which redirects a webhook request follows with `allowRedirects`. Every request carries the
/// user's credentials (the password in `passwordBase64`), so the body only ever goes to the
/// origin the operator configured: same scheme, host and port. A redirect elsewhere is
/// refused, not followed without the body, because its answer would decide the login.
/// 307 and 308 keep the method by definition; 301, 302 and 303 are followed with the same
/// POST too, since a webhook has nothing to GET.
enum WebhookRedirect {
    static let maxHops = 5

    static func next(from current: String, configured: String, status: UInt, location: String?) throws -> String {
        guard let location, let base = URL(string: current), let target = URL(string: location, relativeTo: base)?.absoluteURL else {
            throw refused("\(current) answered \(status) without a usable Location")
        }
        guard let origin = Origin(configured), Origin(target.absoluteString) == origin else {
            throw refused("\(current) redirected (\(status)) to \(target.absoluteString), another origin than \(configured); the request is not sent there")
        }
        return target.absoluteString
    }

    private static func refused(_ message: String) -> WebhookError {
        WebhookError(code: "HTTP_CLIENT_REDIRECT_REFUSED", message: message, retryable: false)
    }

    /// RFC 6454's origin: scheme, host and port with the scheme's default filled in.
    struct Origin: Equatable {
        let scheme: String
        let host: String
        let port: Int

        init?(_ url: String) {
            guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(), let host = components.host?.lowercased(),
                let port = components.port ?? ["http": 80, "https": 443][scheme]
            else { return nil }
            self.scheme = scheme
            self.host = host
            self.port = port
        }
    }
}
