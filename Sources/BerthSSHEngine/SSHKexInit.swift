import BerthSSHCipher
import BerthSSHWire
import NIOCore

/// SSH_MSG_KEXINIT (RFC 4253 §7.1).
struct SSHKexInit: Equatable, Sendable {
    var cookie: [UInt8]
    var kexAlgorithms: [String]
    var serverHostKeyAlgorithms: [String]
    var ciphersClientToServer: [String]
    var ciphersServerToClient: [String]
    var macsClientToServer: [String]
    var macsServerToClient: [String]
    var compressionClientToServer: [String]
    var compressionServerToClient: [String]
    var languagesClientToServer: [String]
    var languagesServerToClient: [String]
    var firstKexPacketFollows: Bool
    var reserved: UInt32 = 0

    /// Parses a whole KEXINIT payload, message number included.
    init(payload: ByteBuffer) throws {
        var buffer = payload
        guard buffer.readSSHUInt8() == SSHMessageNumber.kexInit else { throw Self.malformed("wrong message number") }
        guard let cookie = buffer.readBytes(length: 16) else { throw Self.malformed("short cookie") }
        var lists: [[String]] = []
        for index in 0..<10 {
            guard let list = buffer.readSSHNameList() else { throw Self.malformed("name-list \(index + 1) of 10 is truncated") }
            lists.append(list)
        }
        guard let follows = buffer.readSSHBool(), let reserved = buffer.readSSHUInt32() else {
            throw Self.malformed("first_kex_packet_follows/reserved missing")
        }
        self.cookie = cookie
        kexAlgorithms = lists[0]
        serverHostKeyAlgorithms = lists[1]
        ciphersClientToServer = lists[2]
        ciphersServerToClient = lists[3]
        macsClientToServer = lists[4]
        macsServerToClient = lists[5]
        compressionClientToServer = lists[6]
        compressionServerToClient = lists[7]
        languagesClientToServer = lists[8]
        languagesServerToClient = lists[9]
        firstKexPacketFollows = follows
        self.reserved = reserved
    }

    init(
        cookie: [UInt8], kexAlgorithms: [String], serverHostKeyAlgorithms: [String],
        ciphers: [String], macs: [String], compression: [String] = ["none"]
    ) {
        self.cookie = cookie
        self.kexAlgorithms = kexAlgorithms
        self.serverHostKeyAlgorithms = serverHostKeyAlgorithms
        ciphersClientToServer = ciphers
        ciphersServerToClient = ciphers
        macsClientToServer = macs
        macsServerToClient = macs
        compressionClientToServer = compression
        compressionServerToClient = compression
        languagesClientToServer = []
        languagesServerToClient = []
        firstKexPacketFollows = false
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.writeSSHUInt8(SSHMessageNumber.kexInit)
        buffer.writeBytes(cookie)
        for list in [
            kexAlgorithms, serverHostKeyAlgorithms, ciphersClientToServer, ciphersServerToClient,
            macsClientToServer, macsServerToClient, compressionClientToServer, compressionServerToClient,
            languagesClientToServer, languagesServerToClient,
        ] {
            buffer.writeSSHNameList(list)
        }
        buffer.writeSSHBool(firstKexPacketFollows)
        buffer.writeSSHUInt32(reserved)
    }

    var payload: ByteBuffer {
        var buffer = ByteBuffer()
        write(into: &buffer)
        return buffer
    }

    private static func malformed(_ detail: String) -> SSHProtocolError {
        SSHProtocolError("SSH_MALFORMED_KEXINIT", "malformed KEXINIT: \(detail)")
    }
}

/// Pseudo-algorithms that signal extensions in the kex list and must never be negotiated.
enum SSHKexMarker {
    static let extInfoClient = "ext-info-c"
    static let extInfoServer = "ext-info-s"
    static let strictClient = "kex-strict-c-v00@openssh.com"
    static let strictServer = "kex-strict-s-v00@openssh.com"

    static func isMarker(_ name: String) -> Bool {
        name == extInfoClient || name == extInfoServer || name == strictClient || name == strictServer
            || name.hasPrefix("ext-info-") || name.hasPrefix("kex-strict-")
    }
}

/// The outcome of algorithm negotiation for one key exchange.
struct SSHNegotiatedAlgorithms: Equatable, Sendable {
    var kex: String
    var hostKey: String
    var cipherClientToServer: String
    var cipherServerToClient: String
    /// nil when the direction's cipher is AEAD (its MAC list is not negotiated).
    var macClientToServer: String?
    var macServerToClient: String?
    var compressionClientToServer: String
    var compressionServerToClient: String
}

/// RFC 4253 §7.1 negotiation, the same for both roles: for each category the first algorithm
/// on the client's list that is also on the server's.
enum SSHNegotiation {
    static func negotiate(
        client: SSHKexInit, server: SSHKexInit,
        isAEAD: (String) -> Bool = SSHCipherSuite.isAEAD(cipher:)
    ) throws -> SSHNegotiatedAlgorithms {
        let kex = try choose(
            "key exchange", client: client.kexAlgorithms.filter { !SSHKexMarker.isMarker($0) },
            server: server.kexAlgorithms.filter { !SSHKexMarker.isMarker($0) })
        let hostKey = try choose("host key", client: client.serverHostKeyAlgorithms, server: server.serverHostKeyAlgorithms)
        let cipherCS = try choose("client-to-server cipher", client: client.ciphersClientToServer, server: server.ciphersClientToServer)
        let cipherSC = try choose("server-to-client cipher", client: client.ciphersServerToClient, server: server.ciphersServerToClient)
        let macCS =
            isAEAD(cipherCS)
            ? nil
            : try choose("client-to-server MAC", client: client.macsClientToServer, server: server.macsClientToServer)
        let macSC =
            isAEAD(cipherSC)
            ? nil
            : try choose("server-to-client MAC", client: client.macsServerToClient, server: server.macsServerToClient)
        let compCS = try choose("client-to-server compression", client: client.compressionClientToServer, server: server.compressionClientToServer)
        let compSC = try choose("server-to-client compression", client: client.compressionServerToClient, server: server.compressionServerToClient)
        return SSHNegotiatedAlgorithms(
            kex: kex, hostKey: hostKey, cipherClientToServer: cipherCS, cipherServerToClient: cipherSC,
            macClientToServer: macCS, macServerToClient: macSC,
            compressionClientToServer: compCS, compressionServerToClient: compSC)
    }

    static func choose(_ category: String, client: [String], server: [String]) throws -> String {
        let offered = Set(server)
        if let match = client.first(where: { !$0.isEmpty && offered.contains($0) }) { return match }
        throw SSHProtocolError(
            "SSH_KEX_NO_COMMON_ALGORITHM",
            "no common \(category) algorithm; client offers [\(client.joined(separator: ","))], server offers [\(server.joined(separator: ","))]",
            disconnectReason: SSHDisconnectReason.keyExchangeFailed)
    }

    /// RFC 4253 §7.1: a guessed first kex packet is wrong unless both sides prefer the same kex and
    /// host key algorithm (their first entries agree); a wrong guess's packet is ignored.
    static func guessIsWrong(peer: SSHKexInit, ours: SSHKexInit) -> Bool {
        let peerKex = peer.kexAlgorithms.first { !SSHKexMarker.isMarker($0) }
        let ourKex = ours.kexAlgorithms.first { !SSHKexMarker.isMarker($0) }
        return peerKex != ourKex || peer.serverHostKeyAlgorithms.first != ours.serverHostKeyAlgorithms.first
    }
}
