import BerthCore
import NIOCore

/// Stands in for a backend this build does not have yet: the user logs in, is told so on
/// stderr, and the program exits 1.
struct UnavailableBackendConnection: SSHConnectionHandler {
    let backend: String

    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        UnavailableSession(channel: channel, backend: backend)
    }

    func onUnsupportedChannel(type: String) async {}
    func onUnsupportedGlobalRequest(type: String) async {}
    func onShutdown(deadline: ContinuousClock.Instant) async {}
}

struct UnavailableSession: SessionChannelHandler {
    let channel: any SessionChannel
    let backend: String

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
        let message = "Berth: the \(backend) backend is not available in this build; nothing can run yet.\r\n"
        Task {
            try? await channel.writeStderr(ByteBuffer(string: message))
            await channel.sendExitStatus(1)
            await channel.closeWrite()
            await channel.close()
        }
    }
}
