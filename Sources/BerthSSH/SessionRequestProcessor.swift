import BerthCore
import BerthSSHEngine
import Logging
import NIOCore

/// Serves one session channel's requests in the order the client sent them, applying the
/// request order rules and answering success or failure for each.
struct SessionRequestProcessor {
    let handler: any SessionChannelHandler
    let session: EngineSessionChannel
    let logger: Logger
    /// Opens `x11` and `auth-agent@openssh.com` channels for this session's forwards.
    let opener: any ClientChannelOpener

    func run(_ events: AsyncStream<SessionEvent>) async {
        var nextRequestID: UInt64 = 0
        for await event in events {
            switch event {
            case .closed:
                await handler.onClose()
                return
            case .request(let request):
                let requestID = nextRequestID
                nextRequestID += 1
                let accepted = await serve(request, requestID: requestID)
                session.writer.reply(to: request, success: accepted)
            }
        }
    }

    private func serve(_ wire: SSHChannelRequest, requestID: UInt64) async -> Bool {
        let request: SessionRequest
        switch SessionRequest.parse(type: wire.type, payload: wire.payload) {
        case .request(let parsed):
            request = parsed
        case .malformed(let type):
            logger.log(.info, "SSH_REQUEST_MALFORMED", "refused a \(type) request whose data does not parse", [LogKey.channelID: "\(session.channelID)"])
            return false
        case .unsupported(let type):
            await handler.onUnsupportedRequest(requestID: requestID, type: type)
            return false
        }
        if let refusal = session.checkRequest(request.kind) {
            logger.log(.info, "SSH_REQUEST_REFUSED", "request refused: \(refusal)", [LogKey.channelID: "\(session.channelID)"])
            return false
        }
        do {
            switch request {
            case .env(let name, let value): try await handler.onEnv(requestID: requestID, name: name, value: value)
            case .pty(let pty): try await handler.onPtyRequest(requestID: requestID, pty)
            case .shell: try await handler.onShell(requestID: requestID)
            case .exec(let command): try await handler.onExec(requestID: requestID, command: command)
            case .subsystem(let name): try await handler.onSubsystem(requestID: requestID, name: name)
            case .windowChange(let size): try await handler.onWindowChange(requestID: requestID, size)
            case .signal(let name): try await handler.onSignal(requestID: requestID, signal: name)
            case .breakSignal(let milliseconds): try await handler.onBreak(requestID: requestID, milliseconds: milliseconds)
            case .x11(let x11): try await handler.onX11Request(requestID: requestID, x11, opener: opener)
            case .agentForwarding: try await handler.onAgentForwardRequest(requestID: requestID, opener: opener)
            }
            if request.kind == .program { session.markProgramStarted() }
            return true
        } catch let error as CodedError {
            logger.log(.info, error.code, "request refused: \(error.message)", [LogKey.channelID: "\(session.channelID)"])
            return false
        } catch {
            logger.log(.info, "SSH_REQUEST_FAILED", "request failed: \(error)", [LogKey.channelID: "\(session.channelID)"])
            return false
        }
    }
}
