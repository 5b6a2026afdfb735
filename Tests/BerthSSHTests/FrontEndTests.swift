import BerthConfig
import BerthCore
import BerthSSHKeys
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
@testable import BerthSSH

/// Drives the front end with the real OpenSSH client and a minimal layer stack written here,
/// so the SSH plumbing is proven independently of the auth and backend modules.
@Suite(.serialized) struct FrontEndTests {
    @Test func passwordLoginExecOutputAndExitStatus() async throws {
        try await withFrontEnd { port in
            let result = try runSSH(port: port, password: "secret", command: "hello world")
            #expect(result.stdout == "ran: hello world\n")
            #expect(result.stderr.contains("to stderr"))
            #expect(!result.stdout.contains("to stderr"))
            #expect(result.status == 7)
        }
    }

    @Test func connectionMetadataCarriesClientVersionAndAddress() async throws {
        try await withFrontEnd { port in
            let result = try runSSH(port: port, password: "secret", command: "whoami")
            #expect(result.stdout.hasPrefix("alice SSH-2.0-OpenSSH_"))
            #expect(result.stdout.contains(" 127.0.0.1:"))
        }
    }

    @Test func loginGraceTimeClosesSilentConnections() async throws {
        try await withFrontEnd(graceSeconds: 1) { port in
            let socket = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
            // Sends nothing; the server must hang up on its own.
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await socket.closeFuture.get() }
                group.addTask {
                    try await Task.sleep(for: .seconds(30))
                    throw BerthError("TEST", "connection still open after 30 s")
                }
                try await group.next()
                group.cancelAll()
            }
        }
    }

    @Test func wrongPasswordIsRejected() async throws {
        try await withFrontEnd { port in
            let result = try runSSH(port: port, password: "wrong", command: "x")
            // sshpass reports a repeated password prompt as 5; ssh itself exits 255.
            #expect([5, 255].contains(result.status))
            #expect(result.stdout.isEmpty)
        }
    }

    @Test func stdinEOFReachesTheProgramAndOutputIsNotLost() async throws {
        try await withFrontEnd { port in
            let result = try runSSH(port: port, password: "secret", command: "cat", stdin: Data(repeating: 0x61, count: 300_000))
            #expect(result.status == 0)
            #expect(result.stdout.count == 300_000 + "END\n".count)
            #expect(result.stdout.hasSuffix("aaaEND\n"))
        }
    }

    /// A connection that drops while a session runs: the layers hear of the disconnect only after
    /// the session's `onClose` has returned, even when that takes a while (docs/architecture.md,
    /// "Connection lifecycle").
    @Test func sessionsCloseBeforeTheDisconnect() async throws {
        try await withFrontEnd { port in
            lifecycle.withLockedValue { $0 = [] }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/sshpass")
            process.arguments = [
                "-p", "secret", "ssh", "-p", "\(port)", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", "-o", "LogLevel=ERROR", "alice@127.0.0.1", "hold",
            ]
            process.standardInput = Pipe()
            process.standardOutput = Pipe()
            process.standardError = Pipe()
            try process.run()
            while !lifecycle.withLockedValue({ $0.contains("hold") }) { try await Task.sleep(for: .milliseconds(10)) }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            while !lifecycle.withLockedValue({ $0.contains("disconnect") }) { try await Task.sleep(for: .milliseconds(10)) }
            #expect(lifecycle.withLockedValue { $0 } == ["hold", "close", "disconnect"])
        }
    }

    private func withFrontEnd(graceSeconds: Int64 = 120, _ body: (Int) async throws -> Void) async throws {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        var ssh = SSHConfig()
        ssh.listen = "127.0.0.1:0"
        ssh.loginGraceTime = .seconds(graceSeconds)
        let settings = try SSHFrontEndSettings(config: ssh, hostKeys: [try SSHPrivateKey.generate(.ed25519)])
        let frontEnd = SSHFrontEnd(settings: settings, handler: TestServer(), logger: logger, group: MultiThreadedEventLoopGroup.singleton)
        let address = try await frontEnd.start()
        do {
            try await body(address.port!)
        } catch {
            await frontEnd.shutdown(deadline: .now)
            throw error
        }
        await frontEnd.shutdown(deadline: .now)
    }

    private func runSSH(port: Int, password: String, command: String, stdin: Data = Data()) throws -> (stdout: String, stderr: String, status: Int32) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sshpass")
        process.arguments = [
            "-p", password, "ssh", "-p", "\(port)", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", "-o", "LogLevel=ERROR", "alice@127.0.0.1", command,
        ]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let writer = Thread {
            input.fileHandleForWriting.write(stdin)
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self), process.terminationStatus)
    }
}

/// What the test layers saw, in order (sessionsCloseBeforeTheDisconnect).
private let lifecycle = NIOLockedValueBox<[String]>([])

private struct TestServer: ServerHandler {
    func onReady() async throws {}
    func onNetworkConnection(_ metadata: ConnectionMetadata) async throws -> any NetworkConnectionHandler { TestConnection() }
    func onShutdown(deadline: ContinuousClock.Instant) async {}
}

private struct TestConnection: NetworkConnectionHandler, SSHConnectionHandler {
    func onAuthPassword(_ metadata: ConnectionMetadata, password: [UInt8]) async -> AuthOutcome {
        password == Array("secret".utf8) ? .success(metadata) : .failure(reason: "wrong password")
    }
    func onAuthPublicKey(_ metadata: ConnectionMetadata, publicKey: String) async -> AuthOutcome { .failure(reason: "no keys") }
    func onAuthSecondFactor(_ metadata: ConnectionMetadata, code: String) async -> AuthOutcome { .failure(reason: "no second factor") }
    func onAuthKeyboardInteractive(_ metadata: ConnectionMetadata, conversation: any KeyboardInteractiveConversation) async -> AuthOutcome { .failure(reason: "none") }
    func onHandshakeFailed(_ metadata: ConnectionMetadata, reason: String) async {}
    func onHandshakeSuccess(_ metadata: ConnectionMetadata) async throws -> any SSHConnectionHandler { self }
    func onDisconnect() async { lifecycle.withLockedValue { $0.append("disconnect") } }
    func onSessionChannel(_ channel: any SessionChannel) async throws -> any SessionChannelHandler { TestSession(channel: channel) }
    func onUnsupportedChannel(type: String) async {}
    func onUnsupportedGlobalRequest(type: String) async {}
}

private struct TestSession: SessionChannelHandler {
    let channel: any SessionChannel

    func onEnv(requestID: UInt64, name: String, value: String) async throws {}
    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {}
    func onShell(requestID: UInt64) async throws {}
    func onExec(requestID: UInt64, command: String) async throws {
        let channel = self.channel
        Task {
            if command == "whoami" {
                let connection = channel.connection
                try? await channel.writeStdout(ByteBuffer(string: "\(connection.username) \(connection.clientVersion) \(connection.remoteAddress)\n"))
                await channel.sendExitStatus(0)
            } else if command == "hold" {
                // Runs until the connection drops.
                lifecycle.withLockedValue { $0.append("hold") }
                return
            } else if command == "cat" {
                for await chunk in channel.stdin { try? await channel.writeStdout(chunk) }
                try? await channel.writeStdout(ByteBuffer(string: "END\n"))
                await channel.sendExitStatus(0)
            } else {
                try? await channel.writeStdout(ByteBuffer(string: "ran: \(command)\n"))
                try? await channel.writeStderr(ByteBuffer(string: "to stderr\n"))
                await channel.sendExitStatus(7)
            }
            await channel.closeWrite()
            await channel.close()
        }
    }
    func onSubsystem(requestID: UInt64, name: String) async throws { throw RequestRefused("TEST", "no subsystems") }
    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {}
    func onSignal(requestID: UInt64, signal: String) async throws {}
    func onUnsupportedRequest(requestID: UInt64, type: String) async {}

    /// Takes a while, as a backend's clean-up can, so a disconnect that did not wait for it
    /// would be seen first.
    func onClose() async {
        try? await Task.sleep(for: .milliseconds(300))
        lifecycle.withLockedValue { $0.append("close") }
    }
}
