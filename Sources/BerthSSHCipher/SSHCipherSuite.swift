import BerthSSHWire
import Crypto
import NIOCore

/// One direction of the binary packet protocol with the keys of one key exchange.
///
/// Implementations keep per-direction state (counters, library contexts held by reference), so a
/// sealer or opener must not be copied and used from two places.
public protocol SSHPacketSealer {
    /// Appends one complete packet carrying `payload` (length, padding, encryption, MAC) to `out`.
    mutating func seal(payload: ByteBuffer, sequenceNumber: UInt32, into out: inout ByteBuffer) throws
}

public protocol SSHPacketOpener {
    /// Takes one packet from the front of `buffer` and returns its payload; nil (and `buffer`
    /// unchanged apart from internal progress kept in `self`) when more bytes are needed.
    /// Throws SSHProtocolError on a bad MAC/tag ("SSH_MAC_ERROR", disconnect reason 5) or an
    /// impossible length ("SSH_BAD_PACKET_LENGTH"; packets above 256 KiB are refused).
    mutating func open(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer?
}

public enum SSHCipherSuite {
    /// Names this build can do, in Berth's default preference order; the CBC ciphers only when an
    /// operator configures them.
    public static let supportedCiphers: [String] = defaultCiphers + ["aes128-cbc", "aes192-cbc", "aes256-cbc"]
    public static let defaultCiphers: [String] = [
        "chacha20-poly1305@openssh.com", "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
        "aes128-ctr", "aes192-ctr", "aes256-ctr",
    ]
    /// SHA-1 MACs only when an operator configures them.
    public static let supportedMACs: [String] = defaultMACs + ["hmac-sha1-etm@openssh.com", "hmac-sha1"]
    public static let defaultMACs: [String] = [
        "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com", "hmac-sha2-256", "hmac-sha2-512",
    ]

    /// The largest `packet_length` an opener accepts (OpenSSH's PACKET_MAX_SIZE).
    public static let maxPacketLength = 256 * 1024
    /// The largest payload a sealer takes: its packet, with the most padding any cipher here adds
    /// (block size 16 + 3), stays within `maxPacketLength`, so a peer with the same limit accepts it.
    public static let maxPayloadLength = maxPacketLength - 1 - 19 - 4

    /// MAC negotiation is ignored for AEAD ciphers.
    public static func isAEAD(cipher: String) -> Bool {
        CipherKind(name: cipher)?.isAEAD ?? false
    }

    /// Key bytes the cipher needs (0 for an unknown name).
    public static func keyLength(cipher: String) -> Int { CipherKind(name: cipher)?.keyLength ?? 0 }
    /// IV bytes the cipher needs (0 for an unknown name and for chacha20-poly1305).
    public static func ivLength(cipher: String) -> Int { CipherKind(name: cipher)?.ivLength ?? 0 }
    /// Key bytes the MAC needs (0 for an unknown name).
    public static func keyLength(mac: String) -> Int { MACKind(name: mac)?.keyLength ?? 0 }

    /// `mac` is nil for AEAD ciphers (and ignored if given).
    public static func makeSealer(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketSealer {
        try makeSealer(cipher: cipher, mac: mac, key: key, iv: iv, macKey: macKey, padding: .random)
    }

    public static func makeOpener(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketOpener {
        let (kind, macKind) = try check(cipher: cipher, mac: mac, key: key, iv: iv, macKey: macKey)
        switch kind {
        case .chachaPoly:
            return try ChaChaPolyOpener(key: key)
        case .gcm:
            return try GCMOpener(key: key, iv: iv)
        case .ctr, .cbc:
            return CipherMACOpener(
                cipher: try makeTransform(kind, key: key, iv: iv, encrypt: false),
                mac: macKind!.make(key: macKey), encryptThenMAC: macKind!.encryptThenMAC)
        }
    }

    /// The unencrypted protection used before the first NEWKEYS.
    public static func plainSealer() -> any SSHPacketSealer { PlainSealer(padding: .random) }
    public static func plainOpener() -> any SSHPacketOpener { PlainOpener() }

    // MARK: internal

    /// Tests pass `.fixed` padding to compare packets byte for byte with another implementation.
    static func makeSealer(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8], padding: PaddingFill) throws -> any SSHPacketSealer {
        let (kind, macKind) = try check(cipher: cipher, mac: mac, key: key, iv: iv, macKey: macKey)
        switch kind {
        case .chachaPoly:
            return try ChaChaPolySealer(key: key, padding: padding)
        case .gcm:
            return try GCMSealer(key: key, iv: iv, padding: padding)
        case .ctr, .cbc:
            return CipherMACSealer(
                cipher: try makeTransform(kind, key: key, iv: iv, encrypt: true),
                mac: macKind!.make(key: macKey), encryptThenMAC: macKind!.encryptThenMAC, padding: padding)
        }
    }

    static func plainSealer(padding: PaddingFill) -> any SSHPacketSealer { PlainSealer(padding: padding) }

    private static func makeTransform(_ kind: CipherKind, key: [UInt8], iv: [UInt8], encrypt: Bool) throws -> any SSHBlockTransform {
        switch kind {
        case .ctr: return AESCTRTransform(key: key, iv: iv)
        case .cbc: return try EVPBlockTransform(cbcKey: key, iv: iv, encrypt: encrypt)
        case .chachaPoly, .gcm: preconditionFailure("AEAD ciphers have no separate transform")
        }
    }

    private static func check(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> (CipherKind, MACKind?) {
        guard let kind = CipherKind(name: cipher) else {
            throw SSHProtocolError("SSH_UNKNOWN_CIPHER", "cipher \(cipher) is not supported")
        }
        guard key.count == kind.keyLength, iv.count == kind.ivLength else {
            throw SSHProtocolError("SSH_BAD_KEY_LENGTH", "\(cipher) needs a \(kind.keyLength)-byte key and \(kind.ivLength)-byte IV, got \(key.count) and \(iv.count)")
        }
        if kind.isAEAD { return (kind, nil) }
        guard let mac, let macKind = MACKind(name: mac) else {
            throw SSHProtocolError("SSH_UNKNOWN_MAC", "MAC \(mac ?? "(none)") is not supported")
        }
        guard macKey.count == macKind.keyLength else {
            throw SSHProtocolError("SSH_BAD_KEY_LENGTH", "\(mac) needs a \(macKind.keyLength)-byte key, got \(macKey.count)")
        }
        return (kind, macKind)
    }
}

enum CipherKind {
    case chachaPoly
    case gcm(keyLength: Int)
    case ctr(keyLength: Int)
    case cbc(keyLength: Int)

    init?(name: String) {
        switch name {
        case "chacha20-poly1305@openssh.com": self = .chachaPoly
        case "aes128-gcm@openssh.com": self = .gcm(keyLength: 16)
        case "aes256-gcm@openssh.com": self = .gcm(keyLength: 32)
        case "aes128-ctr": self = .ctr(keyLength: 16)
        case "aes192-ctr": self = .ctr(keyLength: 24)
        case "aes256-ctr": self = .ctr(keyLength: 32)
        case "aes128-cbc": self = .cbc(keyLength: 16)
        case "aes192-cbc": self = .cbc(keyLength: 24)
        case "aes256-cbc": self = .cbc(keyLength: 32)
        default: return nil
        }
    }

    var isAEAD: Bool {
        switch self {
        case .chachaPoly, .gcm: return true
        case .ctr, .cbc: return false
        }
    }

    var keyLength: Int {
        switch self {
        case .chachaPoly: return 64
        case .gcm(let length), .ctr(let length), .cbc(let length): return length
        }
    }

    var ivLength: Int {
        switch self {
        case .chachaPoly: return 0
        case .gcm: return 12
        case .ctr, .cbc: return 16
        }
    }
}

enum MACKind {
    case sha1, sha256, sha512
    case sha1ETM, sha256ETM, sha512ETM

    init?(name: String) {
        switch name {
        case "hmac-sha1": self = .sha1
        case "hmac-sha2-256": self = .sha256
        case "hmac-sha2-512": self = .sha512
        case "hmac-sha1-etm@openssh.com": self = .sha1ETM
        case "hmac-sha2-256-etm@openssh.com": self = .sha256ETM
        case "hmac-sha2-512-etm@openssh.com": self = .sha512ETM
        default: return nil
        }
    }

    var encryptThenMAC: Bool {
        switch self {
        case .sha1, .sha256, .sha512: return false
        case .sha1ETM, .sha256ETM, .sha512ETM: return true
        }
    }

    var keyLength: Int {
        switch self {
        case .sha1, .sha1ETM: return 20
        case .sha256, .sha256ETM: return 32
        case .sha512, .sha512ETM: return 64
        }
    }

    func make(key: [UInt8]) -> any SSHPacketMAC {
        switch self {
        case .sha1, .sha1ETM: return SSHHMAC<Insecure.SHA1>(key: key)
        case .sha256, .sha256ETM: return SSHHMAC<SHA256>(key: key)
        case .sha512, .sha512ETM: return SSHHMAC<SHA512>(key: key)
        }
    }
}
