import BerthConfig
import BerthCore
import BerthSSHKeys
import Foundation
import Logging

/// OpenSSH user certificates: trusted when signed by a key of `auth.publicKey.trustedUserCAKeys`
/// or by a `cert-authority` line of the user's own keys. What sshd checks (auth2-pubkey.c,
/// auth-options.c) is checked here the same way: type, CA signature, principal, validity
/// window, critical options (unknown ones refuse), extensions (only what they grant is allowed).
/// See docs/security.md, "Certificates".
struct CertificateAuthenticator: Sendable {
    /// CA key blobs from the configuration.
    let trustedCAs: Set<[UInt8]>

    init(config: PublicKeyAuthConfig) throws {
        var blobs = Set<[UInt8]>()
        for (index, entry) in config.trustedUserCAKeys.enumerated() {
            let name = "auth.publicKey.trustedUserCAKeys[\(index)]"
            var lines = [entry]
            if entry.hasPrefix("/") {
                do {
                    lines = try String(contentsOfFile: entry, encoding: .utf8).split(whereSeparator: \.isNewline).map(String.init)
                } catch {
                    throw ConfigError(path: name, "cannot read \(entry): \((error as NSError).localizedDescription)")
                }
            }
            for line in lines {
                do {
                    guard let parsed = try AuthorizedKeyLine.parse(line) else { continue }
                    guard let blob = Data(base64Encoded: parsed.keyBlob), (try? SSHPublicKey(blob: Array(blob))) != nil else {
                        throw AuthorizedKeyLine.Refusal("\(parsed.keyType) is not a CA key Berth can verify with")
                    }
                    blobs.insert(Array(blob))
                } catch {
                    throw ConfigError(path: name, "\(line.prefix(40))…: \(error)")
                }
            }
        }
        trustedCAs = blobs
    }

    static func isCertificate(_ publicKey: String) -> Bool {
        SSHCertificate.plainKeyTypes[String(publicKey.prefix { $0 != " " })] != nil
    }

    /// `authorities`: the user's key lines (static list or file), searched for `cert-authority`.
    func authenticate(
        _ metadata: ConnectionMetadata, certificate text: String, authorities: [AuthorizedKeys.Source],
        now: Date = Date(), logger: Logger?
    ) -> AuthOutcome {
        let fields = text.split(separator: " ")
        guard fields.count >= 2, let blob = Data(base64Encoded: String(fields[1])),
            let certificate = try? SSHCertificate(blob: Array(blob))
        else {
            return .failure(reason: "the certificate cannot be read")
        }
        let outcome = check(certificate, metadata: metadata, authorities: authorities, now: now)
        if case .failure(let reason) = outcome {
            logger?.log(
                .info, "AUTH_CERTIFICATE_REFUSED", "certificate refused: \(reason)",
                [
                    LogKey.username: "\(metadata.username)", "keyId": "\(certificate.keyID.prefix(128))", "serial": "\(certificate.serial)",
                    "ca": "\(certificate.signatureKey.fingerprintSHA256)",
                ])
        }
        return outcome
    }

    private func check(_ certificate: SSHCertificate, metadata: ConnectionMetadata, authorities: [AuthorizedKeys.Source], now: Date) -> AuthOutcome {
        guard certificate.kind == .user else { return .failure(reason: "a host certificate was offered for user authentication") }
        guard certificate.signatureIsValid else { return .failure(reason: "the certificate's CA signature does not verify") }
        let username = metadata.username
        // The CA line that vouches for the certificate, if it is not trusted by configuration.
        var authority: AuthorizedKeyOptions?
        if !trustedCAs.contains(certificate.signatureKey.blob) {
            guard let line = authorityLine(for: certificate, in: authorities, metadata: metadata, now: now) else {
                return .failure(reason: "the certificate's CA (\(certificate.signatureKey.fingerprintSHA256)) is not trusted for this user")
            }
            authority = line
        }
        if let names = authority?.principals {
            guard certificate.principals.contains(where: names.contains) else {
                return .failure(reason: "no principal of the certificate is in the cert-authority line's principals=")
            }
        } else if !certificate.principals.contains(username) {
            // An empty principal list would mean "anyone"; sshd refuses it for users too.
            return .failure(reason: "the certificate is not valid for user \(username) (principals: \(certificate.principals.joined(separator: ",")))")
        }
        let seconds = UInt64(max(0, now.timeIntervalSince1970))
        guard certificate.isValid(at: seconds) else {
            return .failure(reason: seconds < certificate.validAfter ? "the certificate is not valid yet" : "the certificate has expired")
        }
        var restrictions = authority?.restrictions ?? LoginRestrictions()
        for option in certificate.criticalOptions {
            switch option.name {
            case "force-command":
                guard let command = option.stringValue else { return .failure(reason: "the certificate's force-command is malformed") }
                if let lineCommand = restrictions.forceCommand, lineCommand != command {
                    return .failure(reason: "the certificate's force-command and the cert-authority line's command= differ")
                }
                restrictions.forceCommand = command
            case "source-address":
                guard let list = option.stringValue else { return .failure(reason: "the certificate's source-address is malformed") }
                let blocks = list.split(separator: ",").map { IPBlock(String($0)) }
                guard !blocks.isEmpty, !blocks.contains(where: { $0 == nil }) else {
                    return .failure(reason: "the certificate's source-address \"\(list.prefix(64))\" is not a list of address blocks")
                }
                guard let address = IPAddressBytes(metadata.remoteAddress.ip), blocks.contains(where: { $0!.contains(address) }) else {
                    return .failure(reason: "the certificate's source-address does not include \(metadata.remoteAddress.ip)")
                }
            case "verify-required":
                return .failure(reason: "the certificate requires FIDO user verification, which Berth cannot check")
            default:
                return .failure(reason: "the certificate has the unknown critical option \"\(option.name.prefix(64))\"")
            }
        }
        // Extensions grant; what a certificate does not grant is refused.
        let granted = Set(certificate.extensions.map(\.name))
        restrictions.pty = restrictions.pty && granted.contains("permit-pty")
        restrictions.portForwarding = restrictions.portForwarding && granted.contains("permit-port-forwarding")
        restrictions.agentForwarding = restrictions.agentForwarding && granted.contains("permit-agent-forwarding")
        restrictions.x11Forwarding = restrictions.x11Forwarding && granted.contains("permit-X11-forwarding")
        var admitted = metadata.merging(
            MetadataUpdate(
                metadata: [
                    "certificateKeyId": MetadataValue(value: certificate.keyID),
                    "certificatePrincipals": MetadataValue(value: certificate.principals.joined(separator: ",")),
                    "certificateSerial": MetadataValue(value: "\(certificate.serial)"),
                    "certificateCA": MetadataValue(value: certificate.signatureKey.fingerprintSHA256),
                ],
                environment: (authority?.environment ?? [:]).mapValues { MetadataValue(value: $0) }
            ))
        admitted.restrictions = restrictions
        return .success(admitted)
    }

    /// The first `cert-authority` line naming the certificate's CA that admits this client.
    private func authorityLine(for certificate: SSHCertificate, in lines: [AuthorizedKeys.Source], metadata: ConnectionMetadata, now: Date) -> AuthorizedKeyOptions? {
        for source in lines {
            guard let line = try? AuthorizedKeyLine.parse(source.text), line.options.certAuthority,
                Data(base64Encoded: line.keyBlob).map(Array.init) == certificate.signatureKey.blob,
                !line.options.isExpired(at: now), line.options.allowsSource(ip: metadata.remoteAddress.ip)
            else { continue }
            return line.options
        }
        return nil
    }
}
