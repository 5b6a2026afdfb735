/// `sshproxy` (docs/configuration.md, "sshproxy"): relay users to another SSH server.
public struct SSHProxyConfig: Sendable, Hashable {
    public var server = ""
    public var port = 22
    public var usernamePassThrough = false
    public var username = ""
    public var password = ""
    /// PEM or OpenSSH private key text, or a file path.
    public var privateKey = ""
    /// `SHA256:…` fingerprints of host keys accepted from the server.
    public var allowedHostKeyFingerprints: [String] = []
    public var timeout = BerthDuration.seconds(60)
    public var clientVersion = ""
    /// Algorithms offered upstream, in order.
    public var ciphers = SSHAlgorithmNames.defaultCiphers
    public var kex = SSHAlgorithmNames.defaultKex
    public var macs = SSHAlgorithmNames.defaultMACs
    public var hostKeyAlgorithms = SSHAlgorithmNames.plainKeyAlgorithms

    public init() {}
}

enum SSHProxySectionReader {
    static func read(_ reader: inout ObjectReader, required: Bool) -> SSHProxyConfig {
        var proxy = SSHProxyConfig()
        proxy.server = reader.string("server", "")
        proxy.port = reader.int("port", proxy.port, minimum: 1)
        proxy.usernamePassThrough = reader.bool("usernamePassThrough", false)
        proxy.username = reader.string("username", "")
        proxy.password = reader.string("password", "")
        proxy.privateKey = reader.string("privateKey", "")
        proxy.allowedHostKeyFingerprints = reader.strings("allowedHostKeyFingerprints", [])
        proxy.timeout = reader.duration("timeout", proxy.timeout, minimum: .milliseconds(100), allowZero: false)
        proxy.clientVersion = reader.string("clientVersion", "")
        proxy.ciphers = ConfigReader.checkedList(&reader, "ciphers", proxy.ciphers, supported: SSHAlgorithmNames.ciphers)
        proxy.kex = ConfigReader.checkedList(&reader, "kex", proxy.kex, supported: SSHAlgorithmNames.kex)
        proxy.macs = ConfigReader.checkedList(&reader, "macs", proxy.macs, supported: SSHAlgorithmNames.macs)
        // ContainerSSH's code reads `hostKeyAlgos` while its documentation says `hostKeyAlgorithms`.
        let hostKeyKey = reader.has("hostKeyAlgos") && !reader.has("hostKeyAlgorithms") ? "hostKeyAlgos" : "hostKeyAlgorithms"
        proxy.hostKeyAlgorithms = ConfigReader.checkedList(
            &reader, hostKeyKey, proxy.hostKeyAlgorithms, supported: SSHAlgorithmNames.plainKeyAlgorithms)
        if required {
            if proxy.server.isEmpty { reader.issues.add(reader.keyPath("server"), "required") }
            if !proxy.usernamePassThrough && proxy.username.isEmpty {
                reader.issues.add(reader.keyPath("username"), "required unless usernamePassThrough is true")
            }
            if proxy.password.isEmpty && proxy.privateKey.isEmpty {
                reader.issues.add(reader.keyPath("password"), "give a password or a privateKey for the upstream login")
            }
            if proxy.allowedHostKeyFingerprints.isEmpty {
                reader.issues.add(reader.keyPath("allowedHostKeyFingerprints"), "required: list the upstream's host key fingerprints (SHA256:…, see ssh-keygen -lf)")
            }
        }
        if !proxy.clientVersion.isEmpty && !isValidClientVersion(proxy.clientVersion) {
            reader.issues.add(
                reader.keyPath("clientVersion"),
                "\"\(proxy.clientVersion)\" is not an SSH identification: SSH-2.0-NAME or SSH-2.0-NAME COMMENT (letters, digits; the comment also - _ . and spaces)")
        }
        for (index, fingerprint) in proxy.allowedHostKeyFingerprints.enumerated() where !fingerprint.hasPrefix("SHA256:") {
            reader.issues.add("\(reader.keyPath("allowedHostKeyFingerprints"))[\(index)]", "\"\(fingerprint)\" is not a SHA256:… fingerprint")
        }
        reader.finish()
        return proxy
    }

    /// ContainerSSH's rule, `^SSH-2.0-[a-zA-Z0-9]+( [a-zA-Z0-9- _.]+)?$`: the line goes to the
    /// upstream verbatim, so CR, LF and other bytes that would break the exchange are refused.
    static func isValidClientVersion(_ version: String) -> Bool {
        guard version.hasPrefix("SSH-2.0-") else { return false }
        let rest = version.dropFirst("SSH-2.0-".count)
        let name = rest.prefix { $0.isASCII && ($0.isLetter || $0.isNumber) }
        guard !name.isEmpty else { return false }
        let tail = rest.dropFirst(name.count)
        if tail.isEmpty { return true }
        guard tail.first == " ", tail.count > 1 else { return false }
        return tail.dropFirst().allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "- _.".contains($0)) }
    }
}
