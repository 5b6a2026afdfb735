import BerthSSHCipher
import BerthSSHKex
import BerthSSHWire
import NIOCore

/// The lower modules as the transport uses them. The engine always runs with
/// `SSHDefaultCryptoProvider`; tests substitute transparent stand-ins to watch exactly which
/// keys and sequence numbers protect each packet.
protocol SSHCryptoProvider {
    func makeServerKex(name: String, context: SSHKexContext) throws -> any SSHServerKeyExchange
    func makeClientKex(name: String, context: SSHClientKexContext) throws -> any SSHClientKeyExchange
    func isAEAD(cipher: String) -> Bool
    func keyLength(cipher: String) -> Int
    func ivLength(cipher: String) -> Int
    func keyLength(mac: String) -> Int
    func makeSealer(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketSealer
    func makeOpener(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketOpener
    func plainSealer() -> any SSHPacketSealer
    func plainOpener() -> any SSHPacketOpener
}

struct SSHDefaultCryptoProvider: SSHCryptoProvider {
    func makeServerKex(name: String, context: SSHKexContext) throws -> any SSHServerKeyExchange {
        try SSHKexAlgorithms.makeServer(name: name, context: context)
    }
    func makeClientKex(name: String, context: SSHClientKexContext) throws -> any SSHClientKeyExchange {
        try SSHKexAlgorithms.makeClient(name: name, context: context)
    }
    func isAEAD(cipher: String) -> Bool { SSHCipherSuite.isAEAD(cipher: cipher) }
    func keyLength(cipher: String) -> Int { SSHCipherSuite.keyLength(cipher: cipher) }
    func ivLength(cipher: String) -> Int { SSHCipherSuite.ivLength(cipher: cipher) }
    func keyLength(mac: String) -> Int { SSHCipherSuite.keyLength(mac: mac) }
    func makeSealer(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketSealer {
        try SSHCipherSuite.makeSealer(cipher: cipher, mac: mac, key: key, iv: iv, macKey: macKey)
    }
    func makeOpener(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketOpener {
        try SSHCipherSuite.makeOpener(cipher: cipher, mac: mac, key: key, iv: iv, macKey: macKey)
    }
    func plainSealer() -> any SSHPacketSealer { SSHCipherSuite.plainSealer() }
    func plainOpener() -> any SSHPacketOpener { SSHCipherSuite.plainOpener() }
}
