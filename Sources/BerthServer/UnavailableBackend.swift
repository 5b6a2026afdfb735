import BerthCore
import NIOCore

/// Stands in when the user's environment cannot be provided (backend missing, engine down):
/// every program request prints one line on stderr and exits 1.
struct UnavailableBackendConnection: SSHConnectionHandler {
    /// The whole line, with its line end.
    let line: String

    init(line: String) { self.line = line }
    init(message: String) { line = "Berth: \(message)\r\n" }

    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        UnavailableSession(channel: channel, line: line)
    }

    func onUnsupportedChannel(type: String) async {}
    func onUnsupportedGlobalRequest(type: String) async {}
}

struct UnavailableSession: SessionChannelHandler {
    let channel: any SessionChannel
    let line: String

    func onEnv(requestID: UInt64, name: String, value: String) async throws {}
    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {}
    func onShell(requestID: UInt64) async throws { explain() }
    func onExec(requestID: UInt64, command: String) async throws { explain() }
    func onSubsystem(requestID: UInt64, name: String) async throws { explain() }
    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {}
    func onSignal(requestID: UInt64, signal: String) async throws {}
    func onUnsupportedRequest(requestID: UInt64, type: String) async {}
    func onClose() async {}

    private func explain() {
        let channel = self.channel
        let line = self.line
        Task {
            try? await channel.writeStderr(ByteBuffer(string: line))
            await channel.sendExitStatus(1)
            await channel.closeWrite()
            await channel.close()
        }
    }
}
