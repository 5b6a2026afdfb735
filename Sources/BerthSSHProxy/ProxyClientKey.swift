import BerthCore
import BerthSSH
import BerthSSHKeys
import NIOSSH

/// `sshproxy.privateKey`: loaded like a host key, then handed to swift-nio-ssh, which the proxy
/// still uses in the client role and which cannot sign with RSA.
enum ProxyClientKey {
    static func load(_ entry: String) throws -> NIOSSHPrivateKey {
        let key: SSHPrivateKey
        do {
            guard let loaded = try HostKeyLoader.load(entries: [entry]).first else {
                throw BerthError("SSHPROXY_KEY_INVALID", "sshproxy.privateKey: no key found")
            }
            key = loaded
        } catch let error as CodedError {
            throw BerthError("SSHPROXY_KEY_INVALID", "sshproxy.privateKey: \(error.message.replacingOccurrences(of: "ssh.hostkeys[0]: ", with: ""))")
        }
        switch key.cryptoKey {
        case .ed25519(let raw): return NIOSSHPrivateKey(ed25519Key: raw)
        case .p256(let raw): return NIOSSHPrivateKey(p256Key: raw)
        case .p384(let raw): return NIOSSHPrivateKey(p384Key: raw)
        case .p521(let raw): return NIOSSHPrivateKey(p521Key: raw)
        case .rsa:
            throw BerthError("SSHPROXY_KEY_INVALID", "sshproxy.privateKey: RSA keys cannot be used towards the upstream server yet; use an ed25519 or ECDSA key")
        }
    }
}
