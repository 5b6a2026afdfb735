import BerthCore
import NIOCore

/// A session channel whose traffic and exit reports are recorded.
struct AuditedSessionChannel: SessionChannel {
    let base: any SessionChannel
    let recorder: AuditRecorder

    var channelID: UInt64 { base.channelID }
    var connection: ConnectionMetadata { base.connection }

    var stdin: SessionInput {
        guard recorder.intercept.stdin else { return base.stdin }
        let (recorder, id) = (self.recorder, channelID)
        return base.stdin.tapped { recorder.record(.io, AuditPayload().int("stream", 0).bytes("data", Array($0.readableBytesView)), channel: id) }
    }

    func writeStdout(_ data: ByteBuffer) async throws {
        if recorder.intercept.stdout { recorder.record(.io, AuditPayload().int("stream", 1).bytes("data", Array(data.readableBytesView)), channel: channelID) }
        try await base.writeStdout(data)
    }

    func writeStderr(_ data: ByteBuffer) async throws {
        if recorder.intercept.stderr { recorder.record(.io, AuditPayload().int("stream", 2).bytes("data", Array(data.readableBytesView)), channel: channelID) }
        try await base.writeStderr(data)
    }

    func sendExitStatus(_ status: UInt32) async {
        recorder.record(.exit, AuditPayload().int("exitStatus", Int64(status)), channel: channelID)
        await base.sendExitStatus(status)
    }

    func sendExitSignal(name: String, coreDumped: Bool, message: String) async {
        recorder.record(
            .exitSignal, AuditPayload().text("signal", name).bool("coreDumped", coreDumped).text("errorMessage", message).text("languageTag", "en-US"), channel: channelID)
        await base.sendExitSignal(name: name, coreDumped: coreDumped, message: message)
    }

    func closeWrite() async {
        recorder.record(.closeWrite, channel: channelID)
        await base.closeWrite()
    }

    func close() async { await base.close() }

    func record(_ event: SessionLifecycleEvent) async {
        switch event {
        case .detached(let pid): recorder.record(.sessionDetached, AuditPayload().int("pid", Int64(pid)), channel: channelID)
        case .resumed(let pid): recorder.record(.sessionResumed, AuditPayload().int("pid", Int64(pid)), channel: channelID)
        }
        await base.record(event)
    }

    var output: SessionOutput? {
        let (recorder, id) = (self.recorder, channelID)
        guard recorder.intercept.stdout || recorder.intercept.stderr else { return base.output }
        return base.output?.tapped { data, stream in
            switch stream {
            case .stdout where recorder.intercept.stdout:
                recorder.record(.io, AuditPayload().int("stream", 1).bytes("data", Array(data.readableBytesView)), channel: id)
            case .stderr where recorder.intercept.stderr:
                recorder.record(.io, AuditPayload().int("stream", 2).bytes("data", Array(data.readableBytesView)), channel: id)
            default:
                break
            }
        }
    }
}

/// A forwarding channel whose bytes are recorded when `intercept.forwarding` is on
/// (stream 0 from the client, 1 towards it).
struct AuditedForwardChannel: ForwardChannel {
    let base: any ForwardChannel
    let recorder: AuditRecorder

    var channelID: UInt64 { base.channelID }

    var input: SessionInput {
        guard recorder.intercept.forwarding else { return base.input }
        let (recorder, id) = (self.recorder, channelID)
        return base.input.tapped { recorder.record(.io, AuditPayload().int("stream", 0).bytes("data", Array($0.readableBytesView)), channel: id) }
    }

    func write(_ data: ByteBuffer) async throws {
        if recorder.intercept.forwarding { recorder.record(.io, AuditPayload().int("stream", 1).bytes("data", Array(data.readableBytesView)), channel: channelID) }
        try await base.write(data)
    }

    func closeWrite() async {
        recorder.record(.closeWrite, channel: channelID)
        await base.closeWrite()
    }

    func close() async {
        await base.close()
    }

    func waitClosed() async {
        await base.waitClosed()
        recorder.record(.close, channel: channelID)
    }
}

/// Records the `forwarded-tcpip` channels a reverse forward opens.
struct AuditedOpener: ForwardedChannelOpener {
    let base: any ForwardedChannelOpener
    let recorder: AuditRecorder

    func openForwardedChannel(_ forward: ReverseForward, originatorHost: String, originatorPort: UInt32) async throws -> any ForwardChannel {
        let channel = try await base.openForwardedChannel(forward, originatorHost: originatorHost, originatorPort: originatorPort)
        recorder.record(
            .newChannelForwardedTCPIP,
            AuditPayload().text("ConnectedHost", forward.host).int("ConnectedPort", Int64(forward.port))
                .text("OriginatorHost", originatorHost).int("OriginatorPort", Int64(originatorPort)), channel: channel.channelID)
        recorder.record(.newChannelSuccessful, AuditPayload().text("channelType", "forwarded-tcpip"), channel: channel.channelID)
        return AuditedForwardChannel(base: channel, recorder: recorder)
    }
}

/// Records the channels unix-socket, X11 and agent forwards open towards the client.
struct AuditedClientOpener: ClientChannelOpener {
    let base: any ClientChannelOpener
    let recorder: AuditRecorder

    func openForwardedStreamLocal(path: String) async throws -> any ForwardChannel {
        let channel = try await base.openForwardedStreamLocal(path: path)
        recorder.record(.newChannelForwardedStreamLocal, AuditPayload().text("Path", path), channel: channel.channelID)
        return opened(channel, "forwarded-streamlocal@openssh.com")
    }

    func openX11(originatorHost: String, originatorPort: UInt32) async throws -> any ForwardChannel {
        let channel = try await base.openX11(originatorHost: originatorHost, originatorPort: originatorPort)
        recorder.record(
            .newChannelX11, AuditPayload().text("OriginatorHost", originatorHost).int("OriginatorPort", Int64(originatorPort)),
            channel: channel.channelID)
        return opened(channel, "x11")
    }

    func openAgent() async throws -> any ForwardChannel {
        opened(try await base.openAgent(), "auth-agent@openssh.com")
    }

    private func opened(_ channel: any ForwardChannel, _ type: String) -> any ForwardChannel {
        recorder.record(.newChannelSuccessful, AuditPayload().text("channelType", type), channel: channel.channelID)
        return AuditedForwardChannel(base: channel, recorder: recorder)
    }
}
