import BerthSSHWire

/// A host key presented with its OpenSSH host certificate: K_S is the certificate, the exchange
/// hash is signed by the key with the plain algorithm (PROTOCOL.certkeys), so clients that trust
/// the CA (`@cert-authority` in known_hosts) need no per-host key.
public struct CertifiedHostKey: SSHHostKeySigner {
    public let key: SSHPrivateKey
    public let certificate: SSHCertificate

    /// Host key algorithm for certificates → the algorithm the key signs with.
    public static let algorithms: [String: String] = [
        "ssh-ed25519-cert-v01@openssh.com": "ssh-ed25519",
        "ecdsa-sha2-nistp256-cert-v01@openssh.com": "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com": "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521-cert-v01@openssh.com": "ecdsa-sha2-nistp521",
        "rsa-sha2-512-cert-v01@openssh.com": "rsa-sha2-512",
        "rsa-sha2-256-cert-v01@openssh.com": "rsa-sha2-256",
    ]

    /// Refuses a certificate that is not a host certificate for this key or whose CA signature
    /// does not verify (SSH_KEY_MISMATCH, SSH_KEY_MALFORMED).
    public init(key: SSHPrivateKey, certificate: SSHCertificate) throws {
        guard certificate.kind == .host else { throw SSHKeyError.mismatch("a user certificate cannot be a host certificate") }
        guard certificate.publicKey == key.publicKey else {
            throw SSHKeyError.mismatch("the certificate is for \(certificate.publicKey.fingerprintSHA256), not this host key (\(key.publicKey.fingerprintSHA256))")
        }
        guard certificate.signatureIsValid else { throw SSHKeyError.malformed("the certificate's CA signature does not verify") }
        self.key = key
        self.certificate = certificate
    }

    public var publicKeyBlob: [UInt8] { certificate.blob }

    public var signatureAlgorithms: [String] {
        key.signatureAlgorithms.compactMap { plain in Self.algorithms.first { $0.value == plain }?.key }
    }

    public func sign(_ data: [UInt8], algorithm: String) throws -> [UInt8] {
        guard let plain = Self.algorithms[algorithm] else { throw SSHKeyError.badAlgorithm(algorithm, keyType: certificate.certType) }
        return try key.sign(data, algorithm: plain)
    }
}
