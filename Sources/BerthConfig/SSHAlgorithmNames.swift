/// The algorithm names the `ssh` section accepts. They mirror what Berth's SSH engine implements
/// (BerthSSHCipher, BerthSSHKex, BerthSSHKeys); a unit test in the front end keeps the two equal.
/// Configuration sits below the engine in the layer stack, so it keeps its own copy of the names.
public enum SSHAlgorithmNames {
    public static let defaultCiphers = [
        "chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
        "aes128-ctr", "aes192-ctr", "aes256-ctr",
    ]
    /// CBC modes are weak against plaintext recovery attacks; only an operator's explicit list enables them.
    public static let ciphers = defaultCiphers + ["aes128-cbc", "aes192-cbc", "aes256-cbc"]

    public static let defaultKex = [
        "mlkem768x25519-sha256", "curve25519-sha256", "curve25519-sha256@libssh.org",
        "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
        "diffie-hellman-group-exchange-sha256", "diffie-hellman-group16-sha512",
        "diffie-hellman-group18-sha512", "diffie-hellman-group14-sha256",
    ]
    /// SHA-1 and 1024-bit groups are broken or nearly so; configured only.
    public static let kex = defaultKex + ["diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1", "diffie-hellman-group-exchange-sha1"]

    public static let defaultMACs = [
        "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512",
    ]
    public static let macs = defaultMACs + ["hmac-sha1-etm@openssh.com", "hmac-sha1"]

    /// Key signature algorithms without certificates; also what the SSH proxy accepts from its
    /// upstream, whose key is trusted by fingerprint, not by a CA.
    public static let plainKeyAlgorithms = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "rsa-sha2-512", "rsa-sha2-256",
    ]
    /// Host key signature algorithms; which are offered also depends on the host keys loaded
    /// (certificate algorithms only with `ssh.hostCertificates`).
    public static let defaultHostKeyAlgorithms = certificateAlgorithms + plainKeyAlgorithms
    /// `ssh-rsa` signs with SHA-1; only clients older than OpenSSH 7.2 need it.
    public static let hostKeyAlgorithms = defaultHostKeyAlgorithms + ["ssh-rsa"]

    /// OpenSSH user certificates; the CA must still be trusted (`auth.publicKey.trustedUserCAKeys`).
    public static let certificateAlgorithms = [
        "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
        "rsa-sha2-512-cert-v01@openssh.com", "rsa-sha2-256-cert-v01@openssh.com",
    ]

    /// Signature algorithms accepted for public key user authentication (`server-sig-algs`).
    public static let defaultPublicKeyAlgorithms = plainKeyAlgorithms + certificateAlgorithms + securityKeyAlgorithms
    public static let publicKeyAlgorithms = plainKeyAlgorithms + ["ssh-rsa"] + certificateAlgorithms + securityKeyAlgorithms
    /// FIDO/U2F keys (PROTOCOL.u2f); touch and PIN are checked against the key's options.
    public static let securityKeyAlgorithms = ["sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com"]
}

/// OpenSSH's `PerSourceMaxStartups` and `PerSourceNetBlockSize`: at most `max` unauthenticated
/// connections from one source, where a source is an IPv4 address masked to `v4Bits` or an
/// IPv6 address masked to `v6Bits` (a host usually gets a whole /64). `max` 0 = no limit.
public struct PerSourceStartups: Sendable, Hashable {
    public var max: Int
    public var v4Bits: Int
    public var v6Bits: Int

    public init(max: Int, v4Bits: Int = 32, v6Bits: Int = 64) {
        self.max = max
        self.v4Bits = v4Bits
        self.v6Bits = v6Bits
    }

    /// `ipv4` or `ipv4:ipv6` prefix lengths, as OpenSSH writes them.
    public static func parseBlockSize(_ text: String) -> (v4: Int, v6: Int)? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 1 || parts.count == 2, let v4 = parts[0], (0...32).contains(v4) else { return nil }
        guard parts.count == 2 else { return (v4, 128) }
        guard let v6 = parts[1], (0...128).contains(v6) else { return nil }
        return (v4, v6)
    }

    public var blockSizeDescription: String { "\(v4Bits):\(v6Bits)" }
}

/// OpenSSH's `MaxStartups start:rate:full`: with `start` unauthenticated connections open, new
/// ones are dropped with probability `rate`% rising linearly to 100% at `full`.
public struct MaxStartups: Sendable, Hashable, CustomStringConvertible {
    public var start: Int
    public var rate: Int
    public var full: Int

    public init(start: Int, rate: Int, full: Int) {
        self.start = start
        self.rate = rate
        self.full = full
    }

    /// OpenSSH's default.
    public static let openSSHDefault = MaxStartups(start: 10, rate: 30, full: 100)
    public static let unlimited = MaxStartups(start: 0, rate: 0, full: 0)

    public var isUnlimited: Bool { full == 0 }

    /// Parses `full` or `start:rate:full`; `0` turns the limit off. Returns the problem otherwise.
    public static func parse(_ text: String) -> Parsed {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
        if parts.count == 1, let full = parts[0], full >= 0 {
            return .success(MaxStartups(start: full, rate: 100, full: full))
        }
        guard parts.count == 3, let start = parts[0], let rate = parts[1], let full = parts[2] else {
            return .failure("\"\(text)\" is not start:rate:full (for example 10:30:100) or a single number")
        }
        guard start >= 1, (0...100).contains(rate), full >= start else {
            return .failure("\"\(text)\": need 1 ≤ start ≤ full and a rate between 0 and 100")
        }
        return .success(MaxStartups(start: start, rate: rate, full: full))
    }

    public enum Parsed: Sendable, Equatable {
        case success(MaxStartups)
        case failure(String)
    }

    public var description: String { isUnlimited ? "0" : "\(start):\(rate):\(full)" }
}
