// The middle layers of the stack (metrics, console, audit: docs/architecture.md, "The layer
// stack") conform to these so that whatever they do not override goes to the next layer
// unchanged. Without them a protocol requirement added later (as socket, X11 and agent
// forwarding were) would hit the refusing defaults in a layer that never heard of it, and the
// feature would silently stop at that layer. The security layer does not conform: for it,
// refusing what it has not decided on is the right default.

/// An SSH-connection layer that passes on what it does not handle.
public protocol SSHConnectionLayer: SSHConnectionHandler {
    var next: any SSHConnectionHandler { get }
}

extension SSHConnectionLayer {
    public func onUnsupportedChannel(type: String) async { await next.onUnsupportedChannel(type: type) }
    public func onUnsupportedGlobalRequest(type: String) async { await next.onUnsupportedGlobalRequest(type: type) }

    public func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        try await next.onDirectForward(request, channel: channel)
    }

    public func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        try await next.onReverseForward(forward, opener: opener)
    }

    public func onCancelReverseForward(_ forward: ReverseForward) async throws { try await next.onCancelReverseForward(forward) }

    public func onDirectStreamLocal(path: String, channel: any ForwardChannel) async throws {
        try await next.onDirectStreamLocal(path: path, channel: channel)
    }

    public func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws {
        try await next.onStreamLocalForward(path: path, opener: opener)
    }

    public func onCancelStreamLocalForward(path: String) async throws { try await next.onCancelStreamLocalForward(path: path) }
}

/// A session-channel layer that passes on what it does not handle.
public protocol SessionChannelLayer: SessionChannelHandler {
    var next: any SessionChannelHandler { get }
}

extension SessionChannelLayer {
    public func onEnv(requestID: UInt64, name: String, value: String) async throws { try await next.onEnv(requestID: requestID, name: name, value: value) }
    public func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws { try await next.onPtyRequest(requestID: requestID, pty) }
    public func onShell(requestID: UInt64) async throws { try await next.onShell(requestID: requestID) }
    public func onExec(requestID: UInt64, command: String) async throws { try await next.onExec(requestID: requestID, command: command) }
    public func onSubsystem(requestID: UInt64, name: String) async throws { try await next.onSubsystem(requestID: requestID, name: name) }
    public func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws { try await next.onWindowChange(requestID: requestID, size) }
    public func onSignal(requestID: UInt64, signal: String) async throws { try await next.onSignal(requestID: requestID, signal: signal) }
    public func onBreak(requestID: UInt64, milliseconds: UInt32) async throws { try await next.onBreak(requestID: requestID, milliseconds: milliseconds) }
    public func onUnsupportedRequest(requestID: UInt64, type: String) async { await next.onUnsupportedRequest(requestID: requestID, type: type) }

    public func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws {
        try await next.onX11Request(requestID: requestID, request, opener: opener)
    }

    public func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws {
        try await next.onAgentForwardRequest(requestID: requestID, opener: opener)
    }

    public func onClose() async { await next.onClose() }
}
