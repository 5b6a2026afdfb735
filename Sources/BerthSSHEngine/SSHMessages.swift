import BerthSSHWire
import NIOCore

/// A parsed message above the packet layer. Data-carrying cases hold slices of the packet
/// payload, so parsing copies nothing.
enum SSHMessage {
    case disconnect(reason: UInt32, description: String)
    case ignore
    case unimplemented(sequenceNumber: UInt32)
    case debug(message: String)
    case serviceRequest(String)
    case serviceAccept(String)
    case extInfo([String: ByteBuffer])
    case kexInit(SSHKexInit)
    case newKeys
    /// 30…49: interpreted by the key exchange algorithm itself.
    case kexMessage(UInt8)
    case userauthRequest(SSHUserAuthRequestMessage)
    case userauthInfoResponse([String])
    /// USERAUTH_FAILURE, SUCCESS, BANNER and 60 (PK_OK / INFO_REQUEST): the server's answers,
    /// read by the client role; the server role treats them as unknown.
    case userauthReply(number: UInt8, body: ByteBuffer)
    case globalRequest(type: String, wantReply: Bool, data: ByteBuffer)
    case requestSuccess(ByteBuffer)
    case requestFailure
    case channelOpen(SSHChannelOpenMessage)
    case channelOpenConfirmation(recipient: UInt32, sender: UInt32, window: UInt32, maxPacket: UInt32, data: ByteBuffer)
    case channelOpenFailure(recipient: UInt32, reason: UInt32, description: String)
    case channelWindowAdjust(recipient: UInt32, bytes: UInt32)
    case channelData(recipient: UInt32, data: ByteBuffer)
    case channelExtendedData(recipient: UInt32, type: UInt32, data: ByteBuffer)
    case channelEOF(recipient: UInt32)
    case channelClose(recipient: UInt32)
    case channelRequest(recipient: UInt32, type: String, wantReply: Bool, data: ByteBuffer)
    case channelSuccess(recipient: UInt32)
    case channelFailure(recipient: UInt32)
    /// A message number this engine does not handle in the server role: answered with UNIMPLEMENTED.
    case unknown(UInt8)

    /// Parses a payload (message number first). Throws SSHProtocolError "SSH_MALFORMED_MESSAGE"
    /// naming the message for anything truncated or invalid.
    static func parse(_ payload: ByteBuffer) throws -> SSHMessage {
        var b = payload
        guard let number = b.readSSHUInt8() else {
            throw SSHProtocolError("SSH_EMPTY_PAYLOAD", "packet without a message number")
        }
        func need<T>(_ value: T?, _ what: String) throws -> T {
            guard let value else { throw malformed(number, what) }
            return value
        }
        switch number {
        case SSHMessageNumber.disconnect:
            let reason = try need(b.readSSHUInt32(), "reason code")
            let description = try need(b.readSSHText(), "description")
            return .disconnect(reason: reason, description: description)
        case SSHMessageNumber.ignore:
            return .ignore
        case SSHMessageNumber.unimplemented:
            return .unimplemented(sequenceNumber: try need(b.readSSHUInt32(), "sequence number"))
        case SSHMessageNumber.debug:
            _ = try need(b.readSSHBool(), "always_display")
            return .debug(message: try need(b.readSSHText(), "message"))
        case SSHMessageNumber.serviceRequest:
            return .serviceRequest(try need(b.readSSHText(), "service name"))
        case SSHMessageNumber.serviceAccept:
            return .serviceAccept(try need(b.readSSHText(), "service name"))
        case SSHMessageNumber.extInfo:
            let count = try need(b.readSSHUInt32(), "extension count")
            var extensions: [String: ByteBuffer] = [:]
            // Each extension takes at least 8 bytes, which bounds the loop by the payload size.
            guard Int(count) <= b.readableBytes / 8 else { throw malformed(number, "extension count \(count)") }
            for _ in 0..<count {
                let name = try need(b.readSSHText(), "extension name")
                extensions[name] = try need(b.readSSHString(), "extension value")
            }
            return .extInfo(extensions)
        case SSHMessageNumber.kexInit:
            return .kexInit(try SSHKexInit(payload: payload))
        case SSHMessageNumber.newKeys:
            return .newKeys
        case 30...49:
            return .kexMessage(number)
        case SSHMessageNumber.userauthRequest:
            return .userauthRequest(try SSHUserAuthRequestMessage(parsingAfterNumber: &b))
        case SSHMessageNumber.userauthInfoResponse:
            let count = try need(b.readSSHUInt32(), "response count")
            guard Int(count) <= b.readableBytes / 4 else { throw malformed(number, "response count \(count)") }
            var responses: [String] = []
            for _ in 0..<count { responses.append(try need(b.readSSHText(), "response")) }
            return .userauthInfoResponse(responses)
        case SSHMessageNumber.userauthFailure, SSHMessageNumber.userauthSuccess, SSHMessageNumber.userauthBanner,
            SSHMessageNumber.userauthPKOK:
            return .userauthReply(number: number, body: b)
        case SSHMessageNumber.globalRequest:
            let type = try need(b.readSSHText(), "request name")
            let wantReply = try need(b.readSSHBool(), "want reply")
            return .globalRequest(type: type, wantReply: wantReply, data: b)
        case SSHMessageNumber.requestSuccess:
            return .requestSuccess(b)
        case SSHMessageNumber.requestFailure:
            return .requestFailure
        case SSHMessageNumber.channelOpen:
            return .channelOpen(try SSHChannelOpenMessage(parsingAfterNumber: &b))
        case SSHMessageNumber.channelOpenConfirmation:
            let recipient = try need(b.readSSHUInt32(), "recipient channel")
            let sender = try need(b.readSSHUInt32(), "sender channel")
            let window = try need(b.readSSHUInt32(), "initial window size")
            let maxPacket = try need(b.readSSHUInt32(), "maximum packet size")
            return .channelOpenConfirmation(recipient: recipient, sender: sender, window: window, maxPacket: maxPacket, data: b)
        case SSHMessageNumber.channelOpenFailure:
            let recipient = try need(b.readSSHUInt32(), "recipient channel")
            let reason = try need(b.readSSHUInt32(), "reason code")
            let description = try need(b.readSSHText(), "description")
            return .channelOpenFailure(recipient: recipient, reason: reason, description: description)
        case SSHMessageNumber.channelWindowAdjust:
            let recipient = try need(b.readSSHUInt32(), "recipient channel")
            return .channelWindowAdjust(recipient: recipient, bytes: try need(b.readSSHUInt32(), "bytes to add"))
        case SSHMessageNumber.channelData:
            let recipient = try need(b.readSSHUInt32(), "recipient channel")
            return .channelData(recipient: recipient, data: try need(b.readSSHString(), "data"))
        case SSHMessageNumber.channelExtendedData:
            let recipient = try need(b.readSSHUInt32(), "recipient channel")
            let type = try need(b.readSSHUInt32(), "data type code")
            return .channelExtendedData(recipient: recipient, type: type, data: try need(b.readSSHString(), "data"))
        case SSHMessageNumber.channelEOF:
            return .channelEOF(recipient: try need(b.readSSHUInt32(), "recipient channel"))
        case SSHMessageNumber.channelClose:
            return .channelClose(recipient: try need(b.readSSHUInt32(), "recipient channel"))
        case SSHMessageNumber.channelRequest:
            let recipient = try need(b.readSSHUInt32(), "recipient channel")
            let type = try need(b.readSSHText(), "request type")
            let wantReply = try need(b.readSSHBool(), "want reply")
            return .channelRequest(recipient: recipient, type: type, wantReply: wantReply, data: b)
        case SSHMessageNumber.channelSuccess:
            return .channelSuccess(recipient: try need(b.readSSHUInt32(), "recipient channel"))
        case SSHMessageNumber.channelFailure:
            return .channelFailure(recipient: try need(b.readSSHUInt32(), "recipient channel"))
        default:
            return .unknown(number)
        }
    }

    static func name(of number: UInt8) -> String {
        switch number {
        case 1: "DISCONNECT"
        case 2: "IGNORE"
        case 3: "UNIMPLEMENTED"
        case 4: "DEBUG"
        case 5: "SERVICE_REQUEST"
        case 6: "SERVICE_ACCEPT"
        case 7: "EXT_INFO"
        case 20: "KEXINIT"
        case 21: "NEWKEYS"
        case 30...49: "KEX(\(number))"
        case 50: "USERAUTH_REQUEST"
        case 51: "USERAUTH_FAILURE"
        case 52: "USERAUTH_SUCCESS"
        case 53: "USERAUTH_BANNER"
        case 60: "USERAUTH_PK_OK"
        case 61: "USERAUTH_INFO_RESPONSE"
        case 80: "GLOBAL_REQUEST"
        case 81: "REQUEST_SUCCESS"
        case 82: "REQUEST_FAILURE"
        case 90: "CHANNEL_OPEN"
        case 91: "CHANNEL_OPEN_CONFIRMATION"
        case 92: "CHANNEL_OPEN_FAILURE"
        case 93: "CHANNEL_WINDOW_ADJUST"
        case 94: "CHANNEL_DATA"
        case 95: "CHANNEL_EXTENDED_DATA"
        case 96: "CHANNEL_EOF"
        case 97: "CHANNEL_CLOSE"
        case 98: "CHANNEL_REQUEST"
        case 99: "CHANNEL_SUCCESS"
        case 100: "CHANNEL_FAILURE"
        default: "message \(number)"
        }
    }

    static func malformed(_ number: UInt8, _ what: String) -> SSHProtocolError {
        SSHProtocolError("SSH_MALFORMED_MESSAGE", "malformed \(name(of: number)): \(what) missing or truncated")
    }
}

/// SSH_MSG_USERAUTH_REQUEST (RFC 4252 §5 ff., RFC 4256).
struct SSHUserAuthRequestMessage {
    enum Method {
        case none
        case password(password: String, newPassword: String?)
        case publicKey(algorithm: String, blob: [UInt8], signature: [UInt8]?)
        case keyboardInteractive(language: String, submethods: String)
        case other(String)
    }

    var username: String
    var service: String
    var methodName: String
    var method: Method

    init(parsingAfterNumber b: inout ByteBuffer) throws {
        func need<T>(_ value: T?, _ what: String) throws -> T {
            guard let value else { throw SSHMessage.malformed(SSHMessageNumber.userauthRequest, what) }
            return value
        }
        username = try need(b.readSSHText(), "user name")
        service = try need(b.readSSHText(), "service name")
        methodName = try need(b.readSSHText(), "method name")
        switch methodName {
        case "none":
            method = .none
        case "password":
            let change = try need(b.readSSHBool(), "password change flag")
            let password = try need(b.readSSHText(), "password")
            let newPassword = change ? try need(b.readSSHText(), "new password") : nil
            method = .password(password: password, newPassword: newPassword)
        case "publickey":
            let hasSignature = try need(b.readSSHBool(), "signature flag")
            let algorithm = try need(b.readSSHText(), "public key algorithm")
            let blob = try need(b.readSSHStringBytes(), "public key blob")
            let signature = hasSignature ? try need(b.readSSHStringBytes(), "signature") : nil
            method = .publicKey(algorithm: algorithm, blob: blob, signature: signature)
        case "keyboard-interactive":
            let language = try need(b.readSSHText(), "language tag")
            let submethods = try need(b.readSSHText(), "submethods")
            method = .keyboardInteractive(language: language, submethods: submethods)
        default:
            method = .other(methodName)
        }
    }
}

/// SSH_MSG_CHANNEL_OPEN (RFC 4254 §5.1) with the type-specific part of the types the engine knows.
struct SSHChannelOpenMessage {
    var type: String
    var senderChannel: UInt32
    var initialWindow: UInt32
    var maxPacket: UInt32
    var request: SSHChannelOpenRequest
    /// The type-specific data after the maximum packet size, whatever the type.
    var typeSpecific: ByteBuffer

    init(parsingAfterNumber b: inout ByteBuffer) throws {
        func need<T>(_ value: T?, _ what: String) throws -> T {
            guard let value else { throw SSHMessage.malformed(SSHMessageNumber.channelOpen, what) }
            return value
        }
        type = try need(b.readSSHText(), "channel type")
        senderChannel = try need(b.readSSHUInt32(), "sender channel")
        initialWindow = try need(b.readSSHUInt32(), "initial window size")
        maxPacket = try need(b.readSSHUInt32(), "maximum packet size")
        typeSpecific = b
        switch type {
        case "session":
            request = .session
        case "direct-tcpip":
            let host = try need(b.readSSHText(), "host to connect")
            let port = try need(b.readSSHUInt32(), "port to connect")
            let originator = try need(b.readSSHText(), "originator address")
            let originatorPort = try need(b.readSSHUInt32(), "originator port")
            request = .directTCPIP(host: host, port: port, originatorHost: originator, originatorPort: originatorPort)
        case "direct-streamlocal@openssh.com":
            // OpenSSH follows the path with a reserved string and uint32; neither means anything.
            request = .directStreamLocal(path: try need(b.readSSHText(), "socket path"))
        default:
            request = .other(type: type)
        }
    }
}

/// Builders for the messages the engine sends. Each returns a fresh payload buffer.
enum SSHMessageWriter {
    static func disconnect(reason: UInt32, description: String) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.disconnect)
        b.writeSSHUInt32(reason)
        b.writeSSHText(description)
        b.writeSSHText("")
        return b
    }

    static func unimplemented(sequenceNumber: UInt32) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.unimplemented)
        b.writeSSHUInt32(sequenceNumber)
        return b
    }

    static func serviceAccept(_ service: String) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.serviceAccept)
        b.writeSSHText(service)
        return b
    }

    static func extInfo(_ extensions: [(String, String)]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.extInfo)
        b.writeSSHUInt32(UInt32(extensions.count))
        for (name, value) in extensions {
            b.writeSSHText(name)
            b.writeSSHText(value)
        }
        return b
    }

    static func newKeys() -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.newKeys)
        return b
    }

    static func userauthFailure(methods: [String], partialSuccess: Bool) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.userauthFailure)
        b.writeSSHNameList(methods)
        b.writeSSHBool(partialSuccess)
        return b
    }

    static func userauthSuccess() -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.userauthSuccess)
        return b
    }

    static func userauthBanner(_ text: String) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.userauthBanner)
        b.writeSSHText(text)
        b.writeSSHText("")
        return b
    }

    /// RFC 4256 §3.2 (message 60, shared with PK_OK); no language tag.
    static func userauthInfoRequest(name: String, instruction: String, prompts: [SSHKeyboardInteractivePrompt]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.userauthPKOK)
        b.writeSSHText(name)
        b.writeSSHText(instruction)
        b.writeSSHText("")
        b.writeSSHUInt32(UInt32(prompts.count))
        for prompt in prompts {
            b.writeSSHText(prompt.prompt)
            b.writeSSHBool(prompt.echo)
        }
        return b
    }

    static func userauthPKOK(algorithm: String, blob: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.userauthPKOK)
        b.writeSSHText(algorithm)
        b.writeSSHString(blob)
        return b
    }

    static func globalRequest(type: String, wantReply: Bool, data: ByteBuffer) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.globalRequest)
        b.writeSSHText(type)
        b.writeSSHBool(wantReply)
        var data = data
        b.writeBuffer(&data)
        return b
    }

    static func requestSuccess(data: ByteBuffer) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.requestSuccess)
        var data = data
        b.writeBuffer(&data)
        return b
    }

    static func requestFailure() -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.requestFailure)
        return b
    }

    static func channelOpen(type: String, sender: UInt32, window: UInt32, maxPacket: UInt32, data: ByteBuffer) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.channelOpen)
        b.writeSSHText(type)
        b.writeSSHUInt32(sender)
        b.writeSSHUInt32(window)
        b.writeSSHUInt32(maxPacket)
        var data = data
        b.writeBuffer(&data)
        return b
    }

    static func channelOpenConfirmation(recipient: UInt32, sender: UInt32, window: UInt32, maxPacket: UInt32) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.channelOpenConfirmation)
        b.writeSSHUInt32(recipient)
        b.writeSSHUInt32(sender)
        b.writeSSHUInt32(window)
        b.writeSSHUInt32(maxPacket)
        return b
    }

    static func channelOpenFailure(recipient: UInt32, reason: UInt32, description: String) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.channelOpenFailure)
        b.writeSSHUInt32(recipient)
        b.writeSSHUInt32(reason)
        b.writeSSHText(description)
        b.writeSSHText("")
        return b
    }

    static func channelWindowAdjust(recipient: UInt32, bytes: UInt32) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.channelWindowAdjust)
        b.writeSSHUInt32(recipient)
        b.writeSSHUInt32(bytes)
        return b
    }

    static func channel(_ number: UInt8, recipient: UInt32) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(number)
        b.writeSSHUInt32(recipient)
        return b
    }

    static func channelRequest(recipient: UInt32, type: String, wantReply: Bool, data: ByteBuffer) -> ByteBuffer {
        var b = ByteBuffer()
        b.writeSSHUInt8(SSHMessageNumber.channelRequest)
        b.writeSSHUInt32(recipient)
        b.writeSSHText(type)
        b.writeSSHBool(wantReply)
        var data = data
        b.writeBuffer(&data)
        return b
    }

    /// CHANNEL_DATA / CHANNEL_EXTENDED_DATA written into a reusable scratch buffer: the data is
    /// copied once here, and once more when sealed.
    static func channelData(recipient: UInt32, extendedType: UInt32?, data: ByteBuffer, into b: inout ByteBuffer) {
        b.clear()
        if let extendedType {
            b.writeSSHUInt8(SSHMessageNumber.channelExtendedData)
            b.writeSSHUInt32(recipient)
            b.writeSSHUInt32(extendedType)
        } else {
            b.writeSSHUInt8(SSHMessageNumber.channelData)
            b.writeSSHUInt32(recipient)
        }
        b.writeSSHString(data)
    }
}
