import BerthCore
import NIOCore

/// A test-only backend (enabled with BERTH_ENABLE_TEST_BACKEND=1 and `backend: echo`) that
/// exercises the whole SSH path without a container engine. Its commands are described in
/// docs/testing.md.
struct EchoBackendConnection: SSHConnectionHandler {
    let metadata: ConnectionMetadata

    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler {
        EchoSession(channel: channel, environment: metadata.environment.mapValues(\.value))
    }

    func onUnsupportedChannel(type: String) async {}
    func onUnsupportedGlobalRequest(type: String) async {}
}

actor EchoSession: SessionChannelHandler {
    private let channel: any SessionChannel
    private var environment: [String: String]
    private var program: Task<Void, Never>?

    init(channel: any SessionChannel, environment: [String: String]) {
        self.channel = channel
        self.environment = environment
    }

    func onEnv(requestID: UInt64, name: String, value: String) async throws { environment[name] = value }
    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws { environment["TERM"] = pty.term }
    func onShell(requestID: UInt64) async throws { start { try await $0.shell() } }
    func onExec(requestID: UInt64, command: String) async throws { start { try await $0.exec(command) } }

    func onSubsystem(requestID: UInt64, name: String) async throws {
        throw RequestRefused("ECHO_SUBSYSTEM_NOT_SUPPORTED", "the echo backend has no subsystem \(name)")
    }

    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {}
    func onSignal(requestID: UInt64, signal: String) async throws {}
    func onUnsupportedRequest(requestID: UInt64, type: String) async {}
    func onClose() async { program?.cancel() }

    private func start(_ body: @escaping @Sendable (EchoSession) async throws -> UInt32) {
        let channel = self.channel
        program = Task {
            let status = (try? await body(self)) ?? 1
            await channel.sendExitStatus(status)
            await channel.closeWrite()
            await channel.close()
        }
    }

    private func exec(_ command: String) async throws -> UInt32 {
        let words = command.split(separator: " ", maxSplits: 1).map(String.init)
        switch words.first ?? "" {
        case "exit":
            return UInt32(words.count > 1 ? words[1] : "0") ?? 1
        case "whoami":
            try await channel.writeStdout(ByteBuffer(string: channel.connection.effectiveUsername + "\n"))
        case "env":
            let lines = environment.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)\n" }.joined()
            try await channel.writeStdout(ByteBuffer(string: lines))
        case "cat":
            for await chunk in channel.stdin { try await channel.writeStdout(chunk) }
        case "source":
            // Raw SSH throughput without a container (bench/): N zero bytes, 32 KiB at a time.
            var remaining = Int(words.count > 1 ? words[1] : "0") ?? 0
            let block = ByteBuffer(repeating: 0, count: 32 * 1024)
            while remaining > 0 {
                try await channel.writeStdout(remaining >= block.readableBytes ? block : block.getSlice(at: 0, length: remaining)!)
                remaining -= block.readableBytes
            }
        case "sink":
            var total = 0
            for await chunk in channel.stdin { total += chunk.readableBytes }
            try await channel.writeStdout(ByteBuffer(string: "\(total)\n"))
        case "stderr":
            try await channel.writeStderr(ByteBuffer(string: (words.count > 1 ? words[1] : "") + "\n"))
        default:
            try await channel.writeStdout(ByteBuffer(string: command + "\n"))
        }
        return 0
    }

    private func shell() async throws -> UInt32 {
        try await channel.writeStdout(ByteBuffer(string: "berth echo shell\r\n"))
        for await chunk in channel.stdin { try await channel.writeStdout(chunk) }
        return 0
    }
}
