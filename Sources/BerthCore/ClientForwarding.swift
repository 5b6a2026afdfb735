// Unix-socket, X11 and agent forwarding between the layers (docs/architecture.md, "Forwarding into the
// container"): the SSH front end turns `direct-streamlocal@openssh.com` channels,
// `streamlocal-forward@openssh.com` requests and the session requests `x11-req` and
// `auth-agent-req@openssh.com` into these calls. Layers that do not know them refuse, so a
// backend that cannot serve them (echo, proxy, no agent) says no by default.

/// An `x11-req` (RFC 4254 §6.3.1).
public struct X11Request: Sendable, Hashable {
    public var singleConnection: Bool
    public var authProtocol: String
    /// The cookie as the client sent it: hex. OpenSSH clients send a fake one and put the real
    /// one in place of it when an X client's connection arrives.
    public var cookie: String
    public var screen: UInt32

    public init(singleConnection: Bool, authProtocol: String, cookie: String, screen: UInt32) {
        self.singleConnection = singleConnection
        self.authProtocol = authProtocol
        self.cookie = cookie
        self.screen = screen
    }
}

/// Opens channels towards the client for connections accepted in the user's environment.
public protocol ClientChannelOpener: Sendable {
    /// `forwarded-streamlocal@openssh.com` for a connection to the socket `path` the client asked for.
    func openForwardedStreamLocal(path: String) async throws -> any ForwardChannel
    /// `x11` for an X client's connection.
    func openX11(originatorHost: String, originatorPort: UInt32) async throws -> any ForwardChannel
    /// `auth-agent@openssh.com` for a connection to the forwarded agent's socket.
    func openAgent() async throws -> any ForwardChannel
}

extension SSHConnectionHandler {
    public func onDirectStreamLocal(path: String, channel: any ForwardChannel) async throws {
        throw ChannelRejection(.administrativelyProhibited, "unix socket forwarding is not available")
    }

    public func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws {
        throw RequestRefused("FORWARD_NOT_AVAILABLE", "unix socket forwarding is not available")
    }

    public func onCancelStreamLocalForward(path: String) async throws {
        throw RequestRefused("FORWARD_NOT_AVAILABLE", "unix socket forwarding is not available")
    }
}

extension SessionChannelHandler {
    /// Containers have no serial line; the SSH proxy passes it on.
    public func onBreak(requestID: UInt64, milliseconds: UInt32) async throws {
        throw RequestRefused("SSH_REQUEST_NOT_SUPPORTED", "break is not supported")
    }

    public func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws {
        throw RequestRefused("FORWARD_NOT_AVAILABLE", "X11 forwarding is not available")
    }

    public func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws {
        throw RequestRefused("FORWARD_NOT_AVAILABLE", "agent forwarding is not available")
    }
}
