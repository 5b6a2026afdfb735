import BerthCBOR

/// SETUP payload: what the forward-server should do for its whole life.
public struct ForwardSetup: Sendable, Equatable {
    public enum ConnectionType: UInt64, Sendable {
        case x11 = 0
        /// The agent listens in the container; accepted sockets become connections.
        case portForward = 1
        /// The agent dials out for each connection the peer opens.
        case portDial = 2
        case socketForward = 3
        case socketDial = 4
    }

    public var connectionType: ConnectionType
    public var bindHost: String
    public var bindPort: UInt64
    /// `tcp` or `unix`.
    public var protocolName: String
    public var screen: String
    public var singleConnection: Bool
    public var authProtocol: String
    public var authCookie: String

    public init(
        _ connectionType: ConnectionType, bindHost: String = "", bindPort: UInt64 = 0, protocolName: String = "tcp",
        screen: String = "", singleConnection: Bool = false, authProtocol: String = "", authCookie: String = ""
    ) {
        self.connectionType = connectionType
        self.bindHost = bindHost
        self.bindPort = bindPort
        self.protocolName = protocolName
        self.screen = screen
        self.singleConnection = singleConnection
        self.authProtocol = authProtocol
        self.authCookie = authCookie
    }

    public func encoded() -> [UInt8] {
        CBOREncoder.encode(
            .map([
                CBORPair(.text("ConnectionType"), .unsigned(connectionType.rawValue)),
                CBORPair(.text("BindHost"), .text(bindHost)),
                CBORPair(.text("BindPort"), .unsigned(bindPort)),
                CBORPair(.text("Protocol"), .text(protocolName)),
                CBORPair(.text("Screen"), .text(screen)),
                CBORPair(.text("SingleConnection"), .bool(singleConnection)),
                CBORPair(.text("AuthProtocol"), .text(authProtocol)),
                CBORPair(.text("AuthCookie"), .text(authCookie)),
            ]))
    }

    public init(decoding bytes: [UInt8]) throws(ForwardProtocolError) {
        let fields = try ForwardFields(try decodeItem(bytes, "setup payload"), "setup payload")
        let rawType = try fields.unsigned("ConnectionType")
        guard let type = ConnectionType(rawValue: rawType) else { throw ForwardProtocolError("unknown connection type \(rawType)") }
        self.init(
            type, bindHost: try fields.text("BindHost"), bindPort: try fields.unsigned("BindPort", default: 0),
            protocolName: try fields.text("Protocol"), screen: try fields.text("Screen"),
            singleConnection: try fields.bool("SingleConnection"), authProtocol: try fields.text("AuthProtocol"),
            authCookie: try fields.text("AuthCookie"))
    }
}

/// NEW_CONNECTION payload: where a connection goes (dial) or came from (listen).
public struct ForwardNewConnection: Sendable, Equatable {
    public var protocolName: String
    public var connectedAddress: String
    public var connectedPort: UInt64
    public var originatorAddress: String
    public var originatorPort: UInt64

    public init(protocolName: String, connectedAddress: String, connectedPort: UInt64, originatorAddress: String = "", originatorPort: UInt64 = 0) {
        self.protocolName = protocolName
        self.connectedAddress = connectedAddress
        self.connectedPort = connectedPort
        self.originatorAddress = originatorAddress
        self.originatorPort = originatorPort
    }

    public func encoded() -> [UInt8] {
        CBOREncoder.encode(
            .map([
                CBORPair(.text("Protocol"), .text(protocolName)),
                CBORPair(.text("ConnectedAddress"), .text(connectedAddress)),
                CBORPair(.text("ConnectedPort"), .unsigned(connectedPort)),
                CBORPair(.text("OriginatorAddress"), .text(originatorAddress)),
                CBORPair(.text("OriginatorPort"), .unsigned(originatorPort)),
            ]))
    }

    public init(decoding bytes: [UInt8]) throws(ForwardProtocolError) {
        let fields = try ForwardFields(try decodeItem(bytes, "new-connection payload"), "new-connection payload")
        self.init(
            protocolName: try fields.text("Protocol"), connectedAddress: try fields.text("ConnectedAddress"),
            connectedPort: try fields.unsigned("ConnectedPort", default: 0), originatorAddress: try fields.text("OriginatorAddress"),
            originatorPort: try fields.unsigned("OriginatorPort", default: 0))
    }
}

/// Berth's extension to the SUCCESS answer of a listening SETUP: the port the agent actually
/// bound (it differs from the request for port 0). ContainerSSH's agent answers with a null
/// payload, which reads as "as requested".
public struct ForwardSetupReply: Sendable, Equatable {
    public var boundPort: UInt64

    public init(boundPort: UInt64) { self.boundPort = boundPort }

    public func encoded() -> [UInt8] {
        CBOREncoder.encode(.map([CBORPair(.text("BindPort"), .unsigned(boundPort))]))
    }

    public init?(decoding bytes: [UInt8]?) {
        guard let bytes, let value = try? decodeItem(bytes, "setup reply"),
            let fields = try? ForwardFields(value, "setup reply"),
            let port = try? fields.unsigned("BindPort")
        else { return nil }
        self.boundPort = port
    }
}

/// An ERROR payload is free-form; Berth's agent puts a UTF-8 reason in it.
public func forwardErrorText(_ payload: [UInt8]?) -> String {
    guard let payload, !payload.isEmpty else { return "refused by the agent" }
    return String(decoding: payload, as: UTF8.self)
}

private func decodeItem(_ bytes: [UInt8], _ what: String) throws(ForwardProtocolError) -> CBORValue {
    do {
        return try CBORDecoder.decode(bytes)
    } catch {
        throw ForwardProtocolError("\(what) is not valid CBOR: \(error)")
    }
}
