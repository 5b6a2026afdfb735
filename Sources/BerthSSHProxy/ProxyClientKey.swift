import BerthCore
import BerthSSH
import BerthSSHKeys

/// `sshproxy.privateKey`: loaded like a host key; ed25519, ECDSA and RSA (signed with
/// rsa-sha2-512/256) all work towards the upstream.
enum ProxyClientKey {
    static func load(_ entry: String) throws -> SSHPrivateKey {
        do {
            guard let loaded = try HostKeyLoader.load(entries: [entry]).first else {
                throw BerthError("SSHPROXY_KEY_INVALID", "sshproxy.privateKey: no key found")
            }
            return loaded
        } catch let error as CodedError {
            throw BerthError("SSHPROXY_KEY_INVALID", "sshproxy.privateKey: \(error.message.replacingOccurrences(of: "ssh.hostkeys[0]: ", with: ""))")
        }
    }
}
