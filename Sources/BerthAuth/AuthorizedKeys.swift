import BerthConfig
import BerthCore
import Foundation
import Logging

/// Finds the authorized_keys line that admits an offered key and turns its options into the
/// connection's restrictions (docs/security.md, "Key options").
enum AuthorizedKeys {
    struct Key: Hashable {
        let type: String
        let blob: [UInt8]
    }

    /// The offered key, as the SSH layer gives it (`type base64`).
    static func key(offered: String) -> Key? {
        let fields = offered.split(separator: " ")
        guard fields.count >= 2, let blob = Data(base64Encoded: String(fields[1])) else { return nil }
        return Key(type: String(fields[0]), blob: Array(blob))
    }

    /// One line of a file or of a static user's list, with where it came from for the log.
    struct Source {
        let location: String
        let text: String
    }

    /// The first line whose key is the offered one and whose options admit this client now, in
    /// file order as sshd does; lines that name the key but refuse it are logged with the reason.
    static func authorize(
        _ offered: Key, lines: [Source], metadata: ConnectionMetadata, now: Date = Date(), logger: Logger?
    ) -> AuthOutcome {
        var refusal: String?
        for source in lines {
            let line: AuthorizedKeyLine
            do throws(AuthorizedKeyLine.Refusal) {
                guard let parsed = try AuthorizedKeyLine.parse(source.text) else { continue }
                line = parsed
            } catch {
                // A broken line that names this key is what the operator needs to hear about.
                let namesKey = source.text.contains(Data(offered.blob).base64EncodedString())
                logger?.log(
                    namesKey ? .warning : .debug, "AUTH_KEYS_LINE_REFUSED", "authorized_keys line refused: \(error.reason)",
                    [LogKey.username: "\(metadata.username)", "location": "\(source.location)"])
                if namesKey { refusal = "the key's line in \(source.location) is refused: \(error.reason)" }
                continue
            }
            guard line.keyType == offered.type, Data(base64Encoded: line.keyBlob).map(Array.init) == offered.blob else { continue }
            if line.options.certAuthority {
                refusal = "the key is a cert-authority in \(source.location), not a login key"
            } else if line.options.isExpired(at: now) {
                refusal = "the key's expiry-time in \(source.location) has passed"
            } else if !line.options.allowsSource(ip: metadata.remoteAddress.ip) {
                refusal = "the key's from= in \(source.location) does not match \(metadata.remoteAddress.ip)"
            } else if let reason = securityKeyRefusal(metadata.securityKey, type: offered.type, options: line.options) {
                refusal = "\(reason) (\(source.location))"
            } else {
                var admitted = metadata.merging(MetadataUpdate(environment: line.options.environment.mapValues { MetadataValue(value: $0) }))
                admitted.restrictions = line.options.restrictions
                return .success(admitted)
            }
            logger?.log(
                .info, "AUTH_KEYS_LINE_REFUSED", "authorized_keys line refused: \(refusal!)",
                [LogKey.username: "\(metadata.username)", "location": "\(source.location)"])
        }
        return .failure(reason: refusal ?? "key not authorized for this user")
    }

    /// A FIDO key must have been touched unless the line says `no-touch-required`, and must
    /// have verified its user (PIN, biometric) when the line says `verify-required`.
    static func securityKeyRefusal(_ assertion: SecurityKeyAssertion?, type: String, options: AuthorizedKeyOptions) -> String? {
        guard type.hasPrefix("sk-") else { return nil }
        guard let assertion else { return "the security key's signature carried no flags" }
        if options.touchRequired, !assertion.userPresent { return "the security key was not touched (user presence flag missing; no-touch-required allows that)" }
        if options.verifyRequired, !assertion.userVerified { return "the security key did not verify the user (verify-required)" }
        return nil
    }

    /// `%u` → username, `%%` → `%`. Names that could leave the directory are refused.
    static func path(template: String, username: String) -> String? {
        guard !username.isEmpty, !username.contains("/"), !username.hasPrefix("."), !username.contains("\0") else { return nil }
        var result = ""
        var iterator = template.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else {
                result.append(character)
                continue
            }
            switch iterator.next() {
            case "u": result += username
            case "%": result.append("%")
            case let other?: result += "%" + String(other)
            case nil: result.append("%")
            }
        }
        return result
    }
}
