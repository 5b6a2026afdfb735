import BerthSSHCipher
import BerthSSHKex
import BerthSSHKeys
import BerthSSHWire
import Foundation
import NIOCore
import NIOPosix
import XCTest

@testable import BerthSSHEngine

// A real server on 127.0.0.1 for tests with independent clients (OpenSSH, paramiko). Its
// delegate accepts password "secret" and the public keys in `authorizedKeys`; a session's exec
// command picks a behaviour:
//   echo        stdin back to stdout until EOF, then exit-status 0
//   sha256      reads stdin to EOF, prints its SHA-256 in hex, exit-status 0
//   write N     N 64 KiB blocks of `SessionBehaviour.pattern`, exit-status 0
//   exit N      exit-status N at once
//   stderr TEXT TEXT on extended data 1, exit-status 0

final class TestServer: @unchecked Sendable {
    let group: MultiThreadedEventLoopGroup
    let channel: any Channel
    let port: Int

    init(settings: SSHServerSettings, authorizedKeys: [SSHPublicKey] = []) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let keys = authorizedKeys
        channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let delegate = SessionServerDelegate(authorizedKeys: keys)
                    try channel.pipeline.syncOperations.addHandler(SSHServerHandler(settings: settings, delegate: delegate))
                }
            }
            .bind(host: "127.0.0.1", port: 0).wait()
        port = channel.localAddress!.port!
    }

    func shutdown() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }

    static func settings(rekeyBytes: UInt64 = 1 << 30) throws -> SSHServerSettings {
        var settings = SSHServerSettings(hostKeys: [
            try SSHPrivateKey.generate(.ed25519),
            try SSHPrivateKey.generate(.ecdsaP256),
            try SSHPrivateKey.generate(.rsa(bits: 2048)),
        ])
        settings.kex = SSHKexAlgorithms.supported
        settings.ciphers = SSHCipherSuite.supportedCiphers
        settings.macs = SSHCipherSuite.supportedMACs
        settings.hostKeyAlgorithms = ["ssh-ed25519", "ecdsa-sha2-nistp256", "rsa-sha2-512", "rsa-sha2-256"]
        settings.rekeyBytes = rekeyBytes
        return settings
    }
}

final class SessionServerDelegate: SSHServerDelegate {
    let authorizedKeys: [SSHPublicKey]
    var sshAuthMethods: [String] { ["publickey", "password"] }

    init(authorizedKeys: [SSHPublicKey]) {
        self.authorizedKeys = authorizedKeys
    }

    func sshClientVersion(_ version: String) {}

    func sshAuthenticate(_ request: SSHAuthRequest, promise: EventLoopPromise<SSHAuthResult>) {
        switch request.method {
        case .password("secret"):
            promise.succeed(.success)
        case .publicKey(let key) where authorizedKeys.contains(key):
            promise.succeed(.success)
        default:
            promise.succeed(.failure(partialSuccess: false))
        }
    }

    func sshChannelOpen(_ request: SSHChannelOpenRequest, channel: SSHChannel, promise: EventLoopPromise<Void>) {
        guard case .session = request else {
            promise.fail(SSHChannelOpenError(reason: SSHChannelOpenError.unknownChannelType, message: "sessions only"))
            return
        }
        channel.delegate = SessionBehaviour()
        promise.succeed(())
    }

    func sshGlobalRequest(_ request: SSHGlobalRequest, promise: EventLoopPromise<ByteBuffer>) {
        promise.fail(SSHChannelOpenError(reason: 0, message: "no"))
    }

    func sshConnectionClosed(error: (any Error)?) {}
}

final class SessionBehaviour: SSHChannelDelegate {
    enum Mode { case idle, echo, sha256, write(remaining: Int, offset: Int) }
    var mode = Mode.idle
    var unconsumed = 0
    var collected = ByteBuffer()
    var finished = false

    func sshChannel(_ channel: SSHChannel, received data: ByteBuffer, extendedType: UInt32?) {
        switch mode {
        case .echo:
            channel.write(data, promise: nil)
            // Backpressure: the client's window stays shut while our output is backed up.
            if channel.isWritable { channel.consumed(data.readableBytes) } else { unconsumed += data.readableBytes }
        case .sha256:
            var data = data
            let count = data.readableBytes
            collected.writeBuffer(&data)
            channel.consumed(count)
        default:
            channel.consumed(data.readableBytes)
        }
    }

    func sshChannelEOF(_ channel: SSHChannel) {
        switch mode {
        case .echo:
            finish(channel, status: 0)
        case .sha256:
            let digest = SSHKexHash.sha256.digest(collected)
            channel.write(ByteBuffer(string: digest.map { String(format: "%02x", $0) }.joined() + "\n"), promise: nil)
            finish(channel, status: 0)
        default:
            break
        }
    }

    func sshChannel(_ channel: SSHChannel, request: SSHChannelRequest) {
        guard request.type == "exec" else {
            channel.reply(to: request, success: request.type == "env")
            return
        }
        var payload = request.payload
        let command = payload.readSSHText() ?? ""
        let words = command.split(separator: " ", maxSplits: 1).map(String.init)
        channel.reply(to: request, success: true)
        switch words.first {
        case "echo":
            mode = .echo
        case "sha256":
            mode = .sha256
        case "write":
            mode = .write(remaining: Int(words.last ?? "0") ?? 0, offset: 0)  // in 64 KiB blocks
            pumpWrite(channel)
        case "exit":
            finish(channel, status: UInt32(words.last ?? "0") ?? 0)
        case "stderr":
            channel.write(ByteBuffer(string: words.count > 1 ? words[1] : ""), extendedType: 1, promise: nil)
            finish(channel, status: 0)
        default:
            finish(channel, status: 127)
        }
    }

    func sshChannelWritabilityChanged(_ channel: SSHChannel) {
        guard channel.isWritable else { return }
        if unconsumed > 0 {
            channel.consumed(unconsumed)
            unconsumed = 0
        }
        pumpWrite(channel)
    }

    func sshChannelClosed(_ channel: SSHChannel) {}

    static let blockSize = 65536
    private static let baseBlock: [UInt8] = (0..<blockSize).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 251) }

    /// Block k of the download pattern: a fixed 64 KiB block whose first 8 bytes are k, so a
    /// lost, repeated or reordered block changes the hash.
    static func patternBlock(_ index: Int) -> ByteBuffer {
        var block = ByteBuffer(bytes: baseBlock)
        block.setInteger(UInt64(index), at: 0)
        return block
    }

    static func pattern(blocks: Int) -> ByteBuffer {
        var all = ByteBuffer()
        all.reserveCapacity(blocks * blockSize)
        for index in 0..<blocks {
            var block = patternBlock(index)
            all.writeBuffer(&block)
        }
        return all
    }

    private func pumpWrite(_ channel: SSHChannel) {
        guard case .write(var remaining, var offset) = mode else { return }
        while remaining > 0 && channel.isWritable {
            channel.write(Self.patternBlock(offset), promise: nil)
            remaining -= 1
            offset += 1
        }
        mode = .write(remaining: remaining, offset: offset)
        if remaining == 0 {
            mode = .idle
            finish(channel, status: 0)
        }
    }

    private func finish(_ channel: SSHChannel, status: UInt32) {
        guard !finished else { return }
        finished = true
        var payload = ByteBuffer()
        payload.writeSSHUInt32(status)
        channel.sendRequest(type: "exit-status", wantReply: false, payload: payload, promise: nil)
        channel.sendEOF(promise: nil)
        channel.close(promise: nil)
    }
}

/// Runs a shell script with a deadline; output goes through files so large outputs cannot block.
func runShell(_ script: String, timeout: TimeInterval = 180) throws -> (status: Int32, stdout: String, stderr: String) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("engine-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: directory) }
    let outURL = directory.appendingPathComponent("out"), errURL = directory.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    process.currentDirectoryURL = directory
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    process.standardInput = FileHandle.nullDevice
    let done = DispatchSemaphore(value: 0)
    process.terminationHandler = { _ in done.signal() }
    try process.run()
    if done.wait(timeout: .now() + timeout) == .timedOut {
        process.terminate()
        done.wait()
        throw SSHProtocolError("TEST_TIMEOUT", "script did not finish within \(timeout) s: \(script)")
    }
    let stdout = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
    let stderr = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
    return (process.terminationStatus, stdout, stderr)
}

func commandExists(_ name: String) -> Bool {
    (try? runShell("command -v \(name)", timeout: 10).status) == 0
}

func sha256Hex(_ buffer: ByteBuffer) -> String { SSHKexHash.sha256.digest(buffer).map { String(format: "%02x", $0) }.joined() }
