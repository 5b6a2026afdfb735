import BerthCore
import NIOCore

/// Connection-level events: channels, forwarding requests.
struct AuditSSHConnectionLayer: SSHConnectionLayer {
    let next: any SSHConnectionHandler
    let recorder: AuditRecorder

    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        let id = channel.channelID
        do {
            let handler = try await next.onSessionChannel(AuditedSessionChannel(base: channel, recorder: recorder))
            recorder.record(.newChannelSuccessful, AuditPayload().text("channelType", "session"), channel: id)
            return AuditSession(next: handler, recorder: recorder, channelID: id)
        } catch {
            recorder.record(.newChannelFailed, AuditPayload().text("channelType", "session").text("reason", "\(error)"), channel: id)
            throw error
        }
    }

    func onUnsupportedChannel(type: String) async {
        recorder.record(.newChannelFailed, AuditPayload().text("channelType", type).text("reason", "unsupported channel type"))
        await next.onUnsupportedChannel(type: type)
    }

    func onUnsupportedGlobalRequest(type: String) async {
        recorder.record(.globalRequestUnknown, AuditPayload().text("requestType", type))
        await next.onUnsupportedGlobalRequest(type: type)
    }

    func onDirectForward(_ request: DirectForward, channel: any ForwardChannel) async throws {
        let id = channel.channelID
        recorder.record(
            .newChannelDirectTCPIP,
            AuditPayload().text("HostToConnect", request.host).int("PortToConnect", Int64(request.port))
                .text("OriginatorHost", request.originatorHost).int("OriginatorPort", Int64(request.originatorPort)), channel: id)
        do {
            try await next.onDirectForward(request, channel: AuditedForwardChannel(base: channel, recorder: recorder))
            recorder.record(.newChannelSuccessful, AuditPayload().text("channelType", "direct-tcpip"), channel: id)
        } catch {
            recorder.record(.newChannelFailed, AuditPayload().text("channelType", "direct-tcpip").text("reason", "\(error)"), channel: id)
            throw error
        }
    }

    func onReverseForward(_ forward: ReverseForward, opener: any ForwardedChannelOpener) async throws -> UInt32 {
        recorder.record(.forwardTCPIP, AuditPayload().text("BindHost", forward.host).int("BindPort", Int64(forward.port)))
        return try await next.onReverseForward(forward, opener: AuditedOpener(base: opener, recorder: recorder))
    }

    func onCancelReverseForward(_ forward: ReverseForward) async throws {
        recorder.record(.cancelForwardTCPIP, AuditPayload().text("BindHost", forward.host).int("BindPort", Int64(forward.port)))
        try await next.onCancelReverseForward(forward)
    }

    func onDirectStreamLocal(path: String, channel: any ForwardChannel) async throws {
        let id = channel.channelID
        recorder.record(.newChannelDirectStreamLocal, AuditPayload().text("Path", path), channel: id)
        do {
            try await next.onDirectStreamLocal(path: path, channel: AuditedForwardChannel(base: channel, recorder: recorder))
            recorder.record(.newChannelSuccessful, AuditPayload().text("channelType", "direct-streamlocal@openssh.com"), channel: id)
        } catch {
            recorder.record(.newChannelFailed, AuditPayload().text("channelType", "direct-streamlocal@openssh.com").text("reason", "\(error)"), channel: id)
            throw error
        }
    }

    func onStreamLocalForward(path: String, opener: any ClientChannelOpener) async throws {
        recorder.record(.forwardStreamLocal, AuditPayload().text("Path", path))
        try await next.onStreamLocalForward(path: path, opener: AuditedClientOpener(base: opener, recorder: recorder))
    }

    func onCancelStreamLocalForward(path: String) async throws {
        recorder.record(.cancelForwardStreamLocal, AuditPayload().text("Path", path))
        try await next.onCancelStreamLocalForward(path: path)
    }
}

/// Session requests, numbered per channel by the front end.
struct AuditSession: SessionChannelLayer {
    let next: any SessionChannelHandler
    let recorder: AuditRecorder
    let channelID: UInt64

    private func audited(_ requestID: UInt64, _ type: AuditMessageType, _ payload: AuditPayload, _ body: () async throws -> Void) async throws {
        recorder.record(type, payload.int("requestId", Int64(requestID)), channel: channelID)
        do {
            try await body()
        } catch {
            recorder.record(.requestFailed, AuditPayload().int("requestId", Int64(requestID)).text("reason", "\(error)"), channel: channelID)
            throw error
        }
    }

    func onEnv(requestID: UInt64, name: String, value: String) async throws {
        try await audited(requestID, .setEnv, AuditPayload().text("name", name).text("value", value)) {
            try await next.onEnv(requestID: requestID, name: name, value: value)
        }
    }

    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {
        var modes: [UInt8] = []
        for (opcode, value) in pty.modes.sorted(by: { $0.key < $1.key }) {
            modes.append(opcode)
            for shift in stride(from: 24, through: 0, by: -8) { modes.append(UInt8((value >> UInt32(shift)) & 0xFF)) }
        }
        modes.append(0)
        let payload = AuditPayload().text("term", pty.term).int("columns", Int64(pty.columns)).int("rows", Int64(pty.rows))
            .int("width", Int64(pty.widthPixels)).int("height", Int64(pty.heightPixels)).bytes("modelist", modes)
        try await audited(requestID, .pty, payload) { try await next.onPtyRequest(requestID: requestID, pty) }
    }

    func onShell(requestID: UInt64) async throws {
        try await audited(requestID, .shell, AuditPayload()) { try await next.onShell(requestID: requestID) }
    }

    func onExec(requestID: UInt64, command: String) async throws {
        try await audited(requestID, .exec, AuditPayload().text("program", command)) { try await next.onExec(requestID: requestID, command: command) }
    }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        try await audited(requestID, .subsystem, AuditPayload().text("subsystem", name)) { try await next.onSubsystem(requestID: requestID, name: name) }
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {
        let payload = AuditPayload().int("columns", Int64(size.columns)).int("rows", Int64(size.rows))
            .int("width", Int64(size.widthPixels)).int("height", Int64(size.heightPixels))
        try await audited(requestID, .window, payload) { try await next.onWindowChange(requestID: requestID, size) }
    }

    func onSignal(requestID: UInt64, signal: String) async throws {
        try await audited(requestID, .signal, AuditPayload().text("signal", signal)) { try await next.onSignal(requestID: requestID, signal: signal) }
    }

    func onUnsupportedRequest(requestID: UInt64, type: String) async {
        recorder.record(.channelRequestUnknown, AuditPayload().int("requestId", Int64(requestID)).text("requestType", type).bytes("payload", []), channel: channelID)
        await next.onUnsupportedRequest(requestID: requestID, type: type)
    }

    func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws {
        let payload = AuditPayload().bool("singleConnection", request.singleConnection).text("authProtocol", request.authProtocol)
            .text("cookie", request.cookie).text("screen", "\(request.screen)")
        try await audited(requestID, .x11, payload) {
            try await next.onX11Request(requestID: requestID, request, opener: AuditedClientOpener(base: opener, recorder: recorder))
        }
    }

    func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws {
        try await audited(requestID, .agentForwarding, AuditPayload()) {
            try await next.onAgentForwardRequest(requestID: requestID, opener: AuditedClientOpener(base: opener, recorder: recorder))
        }
    }

    func onClose() async {
        await next.onClose()
        recorder.record(.close, channel: channelID)
    }
}
