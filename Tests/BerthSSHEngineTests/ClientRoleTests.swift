import BerthSSHKex
import BerthSSHKeys
import BerthSSHWire
import BerthTestSupport
import NIOCore
import NIOEmbedded
import XCTest

@testable import BerthSSHEngine

/// Records what the client role tells its owner.
final class RecordingClientDelegate: SSHClientDelegate {
    var serverVersion: String?
    var hostKeys: [(SSHPublicKey, String)] = []
    var refuseHostKey: (any Error)?
    var authenticated = 0
    var opens: [SSHChannel] = []
    var channelDelegates: [RecordingChannelDelegate] = []
    var closedError: [(any Error)?] = []

    func sshServerVersion(_ version: String) { serverVersion = version }
    func sshVerifyHostKey(_ key: SSHPublicKey, algorithm: String) throws {
        hostKeys.append((key, algorithm))
        if let refuseHostKey { throw refuseHostKey }
    }
    func sshAuthenticated() { authenticated += 1 }
    func sshChannelOpen(_ request: SSHChannelOpenRequest, channel: SSHChannel, promise: EventLoopPromise<Void>) {
        let delegate = RecordingChannelDelegate()
        channelDelegates.append(delegate)
        channel.delegate = delegate
        opens.append(channel)
        promise.succeed(())
    }
    func sshGlobalRequest(_ request: SSHGlobalRequest, promise: EventLoopPromise<ByteBuffer>) {
        promise.fail(SSHChannelError.closed)
    }
    func sshConnectionClosed(error: (any Error)?) { closedError.append(error) }
}

/// A client engine and a server engine joined back to back through two EmbeddedChannels, with
/// real crypto; `pump` moves bytes until both sides are quiet.
final class EnginePair {
    let serverChannel = EmbeddedChannel()
    let clientChannel = EmbeddedChannel()
    let server: SSHServerHandler
    let client: SSHConnectionEngine
    let serverDelegate: RecordingServerDelegate
    let clientDelegate = RecordingClientDelegate()

    init(server settings: SSHServerSettings, client clientSettings: SSHClientSettings, serverDelegate: RecordingServerDelegate = RecordingServerDelegate()) throws {
        self.serverDelegate = serverDelegate
        server = SSHServerHandler(settings: settings, delegate: serverDelegate)
        client = SSHConnectionEngine(clientSettings: clientSettings, delegate: clientDelegate)
        try serverChannel.pipeline.syncOperations.addHandler(server)
        try clientChannel.pipeline.syncOperations.addHandler(client)
        try serverChannel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 22)).wait()
        try clientChannel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2222)).wait()
    }

    static func serverSettings(hostKey: SSHPrivateKey? = nil) throws -> SSHServerSettings {
        var settings = SSHServerSettings(hostKeys: [try hostKey ?? SSHPrivateKey.generate(.ed25519)])
        settings.kex = SSHKexAlgorithms.supported
        return settings
    }

    static func clientSettings(password: String? = "secret") -> SSHClientSettings {
        var settings = SSHClientSettings(username: "alice")
        settings.password = password
        return settings
    }

    /// Moves bytes both ways until neither side has anything more to say.
    func pump() {
        var moved = true
        var rounds = 0
        while moved && rounds < 10_000 {
            rounds += 1
            moved = false
            serverChannel.embeddedEventLoop.run()
            clientChannel.embeddedEventLoop.run()
            while let bytes = try? serverChannel.readOutbound(as: ByteBuffer.self) {
                moved = true
                if clientChannel.isActive { try? clientChannel.writeInbound(bytes) }
            }
            while let bytes = try? clientChannel.readOutbound(as: ByteBuffer.self) {
                moved = true
                if serverChannel.isActive { try? serverChannel.writeInbound(bytes) }
            }
        }
    }

    /// Opens a session from the client; the server side's channel delegate answers requests yes.
    func openSession() throws -> (client: SSHChannel, clientSide: RecordingChannelDelegate, server: SSHChannel, serverSide: RecordingChannelDelegate) {
        let clientSide = RecordingChannelDelegate()
        let future = client.openChannel(type: "session", payload: ByteBuffer(), delegate: clientSide)
        pump()
        let channel = try future.wait()
        let serverChannel = try XCTUnwrap(serverDelegate.openedChannels.last)
        let serverSide = try XCTUnwrap(serverDelegate.channelDelegates.last)
        serverSide.onRequest = { channel, request in channel.reply(to: request, success: true) }
        return (channel, clientSide, serverChannel, serverSide)
    }
}

final class ClientRoleTests: XCTestCase {
    func testEveryKexThenPasswordLoginAndASession() throws {
        for kex in SSHKexAlgorithms.supported where !kex.contains("group18") {
            var serverSettings = try EnginePair.serverSettings()
            serverSettings.kex = [kex]
            var clientSettings = EnginePair.clientSettings()
            clientSettings.clientVersion = "SSH-2.0-ProxyTest_1.0 comment"
            clientSettings.kex = [kex]
            let pair = try EnginePair(server: serverSettings, client: clientSettings)
            pair.pump()
            XCTAssertEqual(pair.clientDelegate.authenticated, 1, kex)
            XCTAssertEqual(pair.serverDelegate.clientVersion, "SSH-2.0-ProxyTest_1.0 comment", kex)
            XCTAssertEqual(pair.clientDelegate.serverVersion, "SSH-2.0-Berth", kex)
            XCTAssertEqual(pair.client.sessionID, pair.server.sessionID, kex)
            XCTAssertTrue(pair.client.transport.strictKex && pair.server.transport.strictKex, "strict kex negotiated with \(kex)")
            XCTAssertEqual(pair.clientDelegate.hostKeys.first?.0.blob, serverSettings.hostKeys[0].publicKeyBlob, kex)

            let session = try pair.openSession()
            var command = ByteBuffer()
            command.writeSSHText("echo hi")
            let reply = pair.client.eventLoopForTests.makePromise(of: Bool.self)
            session.client.sendRequest(type: "exec", wantReply: true, payload: command, promise: reply)
            session.client.write(ByteBuffer(string: "to server"), promise: nil)
            pair.pump()
            XCTAssertTrue(try reply.futureResult.wait(), kex)
            XCTAssertEqual(session.serverSide.requests.map(\.type), ["exec"], kex)
            XCTAssertEqual(session.serverSide.received, ByteBuffer(string: "to server"), kex)
            session.server.write(ByteBuffer(string: "to client"), promise: nil)
            session.server.write(ByteBuffer(string: "err"), extendedType: 1, promise: nil)
            var status = ByteBuffer()
            status.writeSSHUInt32(3)
            session.server.sendRequest(type: "exit-status", wantReply: false, payload: status, promise: nil)
            session.server.sendEOF(promise: nil)
            session.server.close(promise: nil)
            pair.pump()
            XCTAssertEqual(session.clientSide.received, ByteBuffer(string: "to client"), kex)
            XCTAssertEqual(session.clientSide.receivedExtended[1], ByteBuffer(string: "err"), kex)
            XCTAssertEqual(session.clientSide.requests.map(\.type), ["exit-status"], kex)
            XCTAssertEqual(session.clientSide.eofCount, 1, kex)
            XCTAssertEqual(session.clientSide.closedCount, 1, kex)
        }
    }

    /// RSA host keys (rsa-sha2-512 and -256) and user keys of every kind, RSA signing with what
    /// the server's server-sig-algs allows.
    func testHostKeyAndUserKeyTypes() throws {
        let rsa = try SSHPrivateKey.generate(.rsa(bits: 2048))
        for (hostKey, algorithm) in [
            (rsa, "rsa-sha2-512"), (rsa, "rsa-sha2-256"), (try SSHPrivateKey.generate(.ecdsaP256), "ecdsa-sha2-nistp256"),
            (try SSHPrivateKey.generate(.ecdsaP384), "ecdsa-sha2-nistp384"), (try SSHPrivateKey.generate(.ed25519), "ssh-ed25519"),
        ] {
            var clientSettings = EnginePair.clientSettings(password: nil)
            clientSettings.hostKeyAlgorithms = [algorithm]
            let userKey = try [SSHPrivateKey.generate(.ed25519), rsa, SSHPrivateKey.generate(.ecdsaP521)].randomElement()!
            clientSettings.privateKey = userKey
            let serverDelegate = RecordingServerDelegate()
            serverDelegate.authAnswer = { request in
                if case .publicKey(let key) = request.method, key.blob == userKey.publicKeyBlob { return .success }
                return .failure(partialSuccess: false)
            }
            var serverSettings = try EnginePair.serverSettings(hostKey: hostKey)
            serverSettings.userAuthKeyAlgorithms = ["ssh-ed25519", "ecdsa-sha2-nistp521", "rsa-sha2-256"]
            let pair = try EnginePair(server: serverSettings, client: clientSettings, serverDelegate: serverDelegate)
            pair.pump()
            XCTAssertEqual(pair.clientDelegate.hostKeys.first?.1, algorithm)
            XCTAssertEqual(pair.clientDelegate.authenticated, 1, "\(algorithm) host key, \(userKey.keyType) user key")
        }
    }

    func testRefusedHostKeyEndsTheConnection() throws {
        struct NotPinned: Error, CustomStringConvertible { var description: String { "not pinned" } }
        let pair = try EnginePair(server: try EnginePair.serverSettings(), client: EnginePair.clientSettings())
        pair.clientDelegate.refuseHostKey = NotPinned()
        pair.pump()
        XCTAssertEqual(pair.clientDelegate.authenticated, 0)
        XCTAssertTrue(pair.serverDelegate.authRequests.isEmpty)
        let error = try XCTUnwrap(pair.clientDelegate.closedError.first as? SSHProtocolError)
        XCTAssertEqual(error.code, "SSH_HOST_KEY_REJECTED")
        XCTAssertEqual(error.disconnectReason, SSHDisconnectReason.hostKeyNotVerifiable)
        let serverSaw = try XCTUnwrap(pair.serverDelegate.closedError.first as? SSHPeerDisconnected)
        XCTAssertEqual(serverSaw.reason, SSHDisconnectReason.hostKeyNotVerifiable)
    }

    func testRejectedCredentialsEndTheConnection() throws {
        let pair = try EnginePair(server: try EnginePair.serverSettings(), client: EnginePair.clientSettings(password: "wrong"))
        pair.pump()
        XCTAssertEqual(pair.clientDelegate.authenticated, 0)
        XCTAssertEqual(pair.serverDelegate.authRequests.count, 1)
        let error = try XCTUnwrap(pair.clientDelegate.closedError.first as? SSHProtocolError)
        XCTAssertEqual(error.code, "SSH_CLIENT_AUTH_REJECTED")
        XCTAssertTrue(error.message.contains("publickey, password"), error.message)
    }

    /// A rekey the client asks for in the middle of a transfer, and windows both ways: nothing
    /// is lost or reordered, and the sender stops when the receiver does not consume.
    func testRekeyAndFlowControlBothWays() throws {
        let pair = try EnginePair(server: try EnginePair.serverSettings(), client: EnginePair.clientSettings())
        pair.pump()
        let session = try pair.openSession()
        session.clientSide.autoConsume = false
        let blocks = 96  // 96 × 64 KiB = 6 MiB, three times the 2 MiB window
        for index in 0..<blocks / 2 { session.server.write(SessionBehaviour.patternBlock(index), promise: nil) }
        pair.pump()
        XCTAssertEqual(session.clientSide.received.readableBytes, Int(SSHClientSettings(username: "x").windowSize), "the window stops the sender")
        pair.client.requestKeyExchange()
        for index in blocks / 2..<blocks { session.server.write(SessionBehaviour.patternBlock(index), promise: nil) }
        // Upload the same way, while the rekey runs.
        for index in 0..<blocks { session.client.write(SessionBehaviour.patternBlock(index), promise: nil) }
        var consumed = 0
        while true {
            let total = session.clientSide.received.readableBytes
            session.client.consumed(total - consumed)
            consumed = total
            pair.pump()
            if session.clientSide.received.readableBytes == total { break }
        }
        XCTAssertEqual(session.clientSide.received, SessionBehaviour.pattern(blocks: blocks))
        XCTAssertEqual(session.serverSide.received, SessionBehaviour.pattern(blocks: blocks))
        XCTAssertEqual(pair.client.transport.keyExchangeCount, 2)
        XCTAssertEqual(pair.server.transport.keyExchangeCount, 2)
    }

    /// The server opens a channel towards the client (forwarded-tcpip): the client sees its type
    /// and type-specific bytes, so a relay can pass on types it does not know.
    func testServerOpenedChannelCarriesItsPayload() throws {
        let pair = try EnginePair(server: try EnginePair.serverSettings(), client: EnginePair.clientSettings())
        pair.pump()
        var payload = ByteBuffer()
        payload.writeSSHText("127.0.0.1")
        payload.writeSSHUInt32(8080)
        payload.writeSSHText("10.0.0.1")
        payload.writeSSHUInt32(5555)
        let opened = pair.server.openChannel(type: "forwarded-tcpip", payload: payload, delegate: RecordingChannelDelegate())
        pair.pump()
        _ = try opened.wait()
        let channel = try XCTUnwrap(pair.clientDelegate.opens.first)
        XCTAssertEqual(channel.type, "forwarded-tcpip")
        XCTAssertEqual(channel.openPayload, payload)
    }

    /// Garbage and mutated packets from a "server": the client ends the connection with an
    /// SSHProtocolError and never crashes.
    func testMalformedServerInputIsRefused() throws {
        var generator = SeededGenerator(seed: 0x5EED_C11E)
        for round in 0..<300 {
            let delegate = RecordingClientDelegate()
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addHandler(SSHConnectionEngine(clientSettings: EnginePair.clientSettings(), delegate: delegate))
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 22)).wait()
            var input = ByteBuffer(string: round % 3 == 0 ? "" : "SSH-2.0-Fuzz\r\n")
            if round % 3 == 2 {
                // A plausible KEXINIT packet with a few bytes flipped.
                let kexInit = SSHKexInit(
                    cookie: generator.bytes(16), kexAlgorithms: ["curve25519-sha256", "kex-strict-s-v00@openssh.com"],
                    serverHostKeyAlgorithms: ["ssh-ed25519"], ciphers: ["aes128-ctr"], macs: ["hmac-sha2-256"])
                var payload = Array(kexInit.payload.readableBytesView)
                for _ in 0..<3 { payload[Int.random(in: 0..<payload.count, using: &generator)] ^= UInt8.random(in: 1...255, using: &generator) }
                let padding = 8 - (payload.count + 5) % 8 + 8
                input.writeInteger(UInt32(payload.count + padding + 1))
                input.writeInteger(UInt8(padding))
                input.writeBytes(payload)
                input.writeBytes([UInt8](repeating: 0, count: padding))
            } else {
                input.writeBytes(generator.bytes(Int.random(in: 1...600, using: &generator)))
            }
            try? channel.writeInbound(input)
            channel.embeddedEventLoop.run()
            for error in delegate.closedError {
                XCTAssertTrue(error is SSHProtocolError, "round \(round): \(String(describing: error))")
            }
            _ = try? channel.finish()
        }
    }
}

extension SSHConnectionEngine {
    var eventLoopForTests: any EventLoop { context!.eventLoop }
}
