import NIOCore

// The SSH data types of RFC 4251 §5 on NIO's ByteBuffer, shared by every layer of Berth's SSH
// engine (docs/architecture.md, "SSH engine"). Readers return nil when the buffer holds too few
// bytes and leave the reader index where it was, so a parser can reject a short message with one
// `guard`; a message that parses must be checked for trailing garbage by its parser if it cares.

/// A malformed or unacceptable SSH message; `code` is a stable message code for logs.
public struct SSHProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    public let code: String
    public let message: String
    /// RFC 4253 §11.1 disconnect reason to send, if the error ends the connection.
    public let disconnectReason: UInt32

    public init(_ code: String, _ message: String, disconnectReason: UInt32 = SSHDisconnectReason.protocolError) {
        self.code = code
        self.message = message
        self.disconnectReason = disconnectReason
    }

    public var description: String { "\(code): \(message)" }
}

/// RFC 4253 §11.1.
public enum SSHDisconnectReason {
    public static let hostNotAllowedToConnect: UInt32 = 1
    public static let protocolError: UInt32 = 2
    public static let keyExchangeFailed: UInt32 = 3
    public static let reserved: UInt32 = 4
    public static let macError: UInt32 = 5
    public static let compressionError: UInt32 = 6
    public static let serviceNotAvailable: UInt32 = 7
    public static let protocolVersionNotSupported: UInt32 = 8
    public static let hostKeyNotVerifiable: UInt32 = 9
    public static let connectionLost: UInt32 = 10
    public static let byApplication: UInt32 = 11
    public static let tooManyConnections: UInt32 = 12
    public static let authCancelledByUser: UInt32 = 13
    public static let noMoreAuthMethodsAvailable: UInt32 = 14
    public static let illegalUserName: UInt32 = 15
}

/// Message numbers (RFC 4250 §4.1, RFC 4419, RFC 5656, RFC 8308).
public enum SSHMessageNumber {
    public static let disconnect: UInt8 = 1
    public static let ignore: UInt8 = 2
    public static let unimplemented: UInt8 = 3
    public static let debug: UInt8 = 4
    public static let serviceRequest: UInt8 = 5
    public static let serviceAccept: UInt8 = 6
    public static let extInfo: UInt8 = 7
    public static let kexInit: UInt8 = 20
    public static let newKeys: UInt8 = 21
    /// KEXDH_INIT, KEX_ECDH_INIT, KEX_HYBRID_INIT, KEX_DH_GEX_REQUEST_OLD all share 30.
    public static let kexDHInit: UInt8 = 30
    /// KEXDH_REPLY, KEX_ECDH_REPLY, KEX_DH_GEX_GROUP share 31.
    public static let kexDHReply: UInt8 = 31
    public static let kexDHGexInit: UInt8 = 32
    public static let kexDHGexReply: UInt8 = 33
    public static let kexDHGexRequest: UInt8 = 34
    public static let userauthRequest: UInt8 = 50
    public static let userauthFailure: UInt8 = 51
    public static let userauthSuccess: UInt8 = 52
    public static let userauthBanner: UInt8 = 53
    /// USERAUTH_PK_OK, USERAUTH_INFO_REQUEST (keyboard-interactive) share 60.
    public static let userauthPKOK: UInt8 = 60
    public static let userauthInfoResponse: UInt8 = 61
    public static let globalRequest: UInt8 = 80
    public static let requestSuccess: UInt8 = 81
    public static let requestFailure: UInt8 = 82
    public static let channelOpen: UInt8 = 90
    public static let channelOpenConfirmation: UInt8 = 91
    public static let channelOpenFailure: UInt8 = 92
    public static let channelWindowAdjust: UInt8 = 93
    public static let channelData: UInt8 = 94
    public static let channelExtendedData: UInt8 = 95
    public static let channelEOF: UInt8 = 96
    public static let channelClose: UInt8 = 97
    public static let channelRequest: UInt8 = 98
    public static let channelSuccess: UInt8 = 99
    public static let channelFailure: UInt8 = 100
}

extension ByteBuffer {
    // MARK: reading

    public mutating func readSSHUInt8() -> UInt8? { readInteger(as: UInt8.self) }
    public mutating func readSSHUInt32() -> UInt32? { readInteger(endianness: .big, as: UInt32.self) }
    public mutating func readSSHUInt64() -> UInt64? { readInteger(endianness: .big, as: UInt64.self) }

    public mutating func readSSHBool() -> Bool? {
        readInteger(as: UInt8.self).map { $0 != 0 }
    }

    /// `string`: uint32 length + bytes, as a slice of this buffer (no copy).
    public mutating func readSSHString() -> ByteBuffer? {
        let start = readerIndex
        guard let length = readSSHUInt32(), let value = readSlice(length: Int(length)) else {
            moveReaderIndex(to: start)
            return nil
        }
        return value
    }

    public mutating func readSSHStringBytes() -> [UInt8]? {
        readSSHString().map { Array($0.readableBytesView) }
    }

    /// A `string` as UTF-8 text (invalid sequences replaced, as protocol text is only logged or compared).
    public mutating func readSSHText() -> String? {
        readSSHString().map { String(decoding: $0.readableBytesView, as: UTF8.self) }
    }

    /// `name-list`: comma-separated US-ASCII names. Empty list for an empty string.
    public mutating func readSSHNameList() -> [String]? {
        guard let text = readSSHText() else { return nil }
        return text.isEmpty ? [] : text.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
    }

    /// `mpint` as its two's-complement big-endian bytes, exactly as sent (may carry a leading 0x00).
    public mutating func readSSHMPIntBytes() -> [UInt8]? { readSSHStringBytes() }

    // MARK: writing

    @discardableResult
    public mutating func writeSSHUInt8(_ value: UInt8) -> Int { writeInteger(value) }
    @discardableResult
    public mutating func writeSSHUInt32(_ value: UInt32) -> Int { writeInteger(value, endianness: .big) }
    @discardableResult
    public mutating func writeSSHUInt64(_ value: UInt64) -> Int { writeInteger(value, endianness: .big) }
    @discardableResult
    public mutating func writeSSHBool(_ value: Bool) -> Int { writeInteger(UInt8(value ? 1 : 0)) }

    @discardableResult
    public mutating func writeSSHString<Bytes: Sequence>(_ bytes: Bytes) -> Int where Bytes.Element == UInt8 {
        let lengthIndex = writerIndex
        writeSSHUInt32(0)
        let written = writeBytes(bytes)
        setInteger(UInt32(written), at: lengthIndex, endianness: .big)
        return 4 + written
    }

    @discardableResult
    public mutating func writeSSHString(_ buffer: ByteBuffer) -> Int {
        writeSSHUInt32(UInt32(buffer.readableBytes))
        var copy = buffer
        return 4 + writeBuffer(&copy)
    }

    @discardableResult
    public mutating func writeSSHText(_ text: String) -> Int { writeSSHString(Array(text.utf8)) }

    @discardableResult
    public mutating func writeSSHNameList(_ names: [String]) -> Int { writeSSHText(names.joined(separator: ",")) }

    /// `mpint` for a non-negative integer given as big-endian magnitude bytes: leading zeros
    /// stripped, a 0x00 prepended when the top bit is set, zero as the empty string.
    @discardableResult
    public mutating func writeSSHMPInt<Bytes: Collection>(unsignedBigEndian magnitude: Bytes) -> Int where Bytes.Element == UInt8 {
        writeSSHString(SSHMPInt.encodeUnsigned(magnitude))
    }
}

public enum SSHMPInt {
    /// The body of an `mpint` (without the length) for a non-negative big-endian magnitude.
    public static func encodeUnsigned<Bytes: Collection>(_ magnitude: Bytes) -> [UInt8] where Bytes.Element == UInt8 {
        var trimmed = Array(magnitude.drop(while: { $0 == 0 }))
        if let first = trimmed.first, first & 0x80 != 0 { trimmed.insert(0, at: 0) }
        return trimmed
    }

    /// The non-negative magnitude of an `mpint` body; nil for negative numbers.
    public static func decodeUnsigned(_ body: [UInt8]) -> [UInt8]? {
        if let first = body.first, first & 0x80 != 0 { return nil }
        return Array(body.drop(while: { $0 == 0 }))
    }
}

/// The server's host key as key exchange needs it; implemented by BerthSSHKeys' `SSHPrivateKey`.
public protocol SSHHostKeySigner: Sendable {
    /// The public key blob K_S (`string key-type, …`, RFC 4253 §6.6).
    var publicKeyBlob: [UInt8] { get }
    /// Host key algorithm names this key can sign with, preferred first
    /// (`["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]` for RSA, `["ssh-ed25519"]`, …).
    var signatureAlgorithms: [String] { get }
    /// A signature blob (`string algorithm, string signature`, RFC 4253 §6.6) over `data`.
    func sign(_ data: [UInt8], algorithm: String) throws -> [UInt8]
}
