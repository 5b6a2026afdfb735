import BerthSSHWire
import NIOCore
import NIOEmbedded
import XCTest

@testable import BerthSSHEngine

final class TransportTests: XCTestCase {
    func testServerSendsVersionAndKexInitAtOnce() throws {
        let connection = try TestConnection()
        let first = try connection.drain()
        XCTAssertEqual(connection.serverVersionLine, "SSH-2.0-Berth")
        XCTAssertEqual(first.count, 1)
        let kexInit = try SSHKexInit(payload: first[0])
        XCTAssertEqual(kexInit.kexAlgorithms, ["test-kex", "kex-strict-s-v00@openssh.com"], "settings in order, strict marker appended")
        XCTAssertEqual(kexInit.ciphersClientToServer, ["test-cipher", "test-aead"])
        XCTAssertEqual(kexInit.serverHostKeyAlgorithms, ["ssh-ed25519"], "only what the ed25519 host key can sign")
        XCTAssertFalse(kexInit.kexAlgorithms.contains("ext-info-s"))
    }

    func testClientVersionIsReported() throws {
        let connection = try TestConnection()
        try connection.sendRaw("banner line\r\nSSH-2.0-TestClient_1.0\r\n")
        XCTAssertEqual(connection.delegate.clientVersion, "SSH-2.0-TestClient_1.0")
    }

    func testBadVersionIsRefused() throws {
        let connection = try TestConnection()
        try connection.sendRaw("SSH-1.5-ancient\r\n")
        try connection.drain()
        XCTAssertEqual(connection.disconnectMessage()?.reason, SSHDisconnectReason.protocolVersionNotSupported)
        XCTAssertFalse(connection.isActive)
        XCTAssertEqual((connection.delegate.closedError.first as? SSHProtocolError)?.code, "SSH_VERSION_UNSUPPORTED")
    }

    func testStrictHandshakeResetsSequenceNumbersAndSendsExtInfo() throws {
        let connection = try TestConnection()
        try connection.handshake(strict: true, extInfo: true)
        // The tagged opener checked every packet's key and sequence number, including the reset to 0.
        let numbers = connection.received.map { $0.messageNumber! }
        XCTAssertEqual(numbers, [20, 31, 21, 7])
        XCTAssertEqual(connection.inSequence, 1, "EXT_INFO is packet 0 under the new keys")
        var extInfo = connection.received[3]
        guard case .extInfo(let extensions) = try SSHMessage.parse(extInfo) else { return XCTFail() }
        extInfo = extensions["server-sig-algs"]!
        XCTAssertEqual(String(buffer: extInfo), SSHServerSettings.defaultUserAuthKeyAlgorithms.joined(separator: ","))
        XCTAssertTrue(connection.handler.transport.strictKex)
        XCTAssertTrue(connection.isActive)
    }

    func testNonStrictHandshakeKeepsCountingAndNoExtInfoUnasked() throws {
        let connection = try TestConnection()
        try connection.handshake(strict: false, extInfo: false)
        XCTAssertEqual(connection.received.map { $0.messageNumber! }, [20, 31, 21])
        XCTAssertEqual(connection.inSequence, 3)
        XCTAssertFalse(connection.handler.transport.strictKex)
        // IGNORE is fine after the handshake in both modes.
        try connection.send(ByteBuffer(bytes: [SSHMessageNumber.ignore, 0, 0, 0, 0]))
        XCTAssertTrue(connection.isActive)
    }

    func testStrictKexRefusesIgnoreDuringInitialKex() throws {
        let connection = try TestConnection()
        connection.strict = true
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.sendKexInit(connection.kexInit(kex: ["test-kex", "kex-strict-c-v00@openssh.com"]))
        try connection.send(ByteBuffer(bytes: [SSHMessageNumber.ignore, 0, 0, 0, 0]))
        try connection.drain()
        XCTAssertFalse(connection.isActive)
        XCTAssertEqual((connection.delegate.closedError.first as? SSHProtocolError)?.code, "SSH_STRICT_KEX_VIOLATION")
    }

    func testNonStrictAllowsIgnoreDuringInitialKex() throws {
        let connection = try TestConnection()
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.drain()
        try connection.send(ByteBuffer(bytes: [SSHMessageNumber.ignore, 0, 0, 0, 0]))
        try connection.sendKexInit(connection.kexInit(kex: ["test-kex"]))
        try connection.finishKex()
        XCTAssertTrue(connection.isActive)
        XCTAssertEqual(connection.received.map { $0.messageNumber! }, [20, 31, 21])
    }

    func testStrictKexRequiresKexInitFirst() throws {
        let connection = try TestConnection()
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.send(ByteBuffer(bytes: [SSHMessageNumber.ignore, 0, 0, 0, 0]))
        try connection.sendKexInit(connection.kexInit(kex: ["test-kex", "kex-strict-c-v00@openssh.com"]))
        XCTAssertFalse(connection.isActive)
        XCTAssertEqual((connection.delegate.closedError.first as? SSHProtocolError)?.code, "SSH_STRICT_KEX_VIOLATION")
    }

    func testServiceRequestBeforeKexIsRefused() throws {
        let connection = try TestConnection()
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.send {
            $0.writeSSHUInt8(SSHMessageNumber.serviceRequest); $0.writeSSHText("ssh-userauth")
        }
        XCTAssertFalse(connection.isActive)
        XCTAssertEqual((connection.delegate.closedError.first as? SSHProtocolError)?.code, "SSH_UNEXPECTED_MESSAGE")
    }

    func testWrongGuessPacketIsIgnored() throws {
        var settings = try TestConnection.defaultSettings()
        settings.kex = ["test-kex2", "test-kex"]
        let connection = try TestConnection(settings: settings)
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.drain()
        try connection.sendKexInit(connection.kexInit(kex: ["test-kex"], follows: true))
        // The guessed packet is garbage for the fake kex; it must be dropped unread.
        try connection.send(ByteBuffer(bytes: [30, 0xFF]))
        XCTAssertTrue(connection.isActive)
        XCTAssertEqual(try connection.drainNumbers(), [], "the ignored guess got no answer")
        try connection.finishKex()
        XCTAssertEqual(connection.received.map { $0.messageNumber! }, [20, 31, 21])
        XCTAssertTrue(connection.isActive)
    }

    func testRightGuessPacketIsUsed() throws {
        let connection = try TestConnection()
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.drain()
        try connection.sendKexInit(connection.kexInit(kex: ["test-kex"], follows: true))
        try connection.finishKex()
        XCTAssertEqual(connection.received.map { $0.messageNumber! }, [20, 31, 21])
        XCTAssertTrue(connection.isActive)
    }

    func testNoCommonAlgorithmDisconnectsWithReason3() throws {
        let connection = try TestConnection()
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.sendKexInit(connection.kexInit(cipher: ["rot13"]))
        try connection.drain()
        let disconnect = try XCTUnwrap(connection.disconnectMessage())
        XCTAssertEqual(disconnect.reason, SSHDisconnectReason.keyExchangeFailed)
        XCTAssertEqual(
            disconnect.description,
            "no common client-to-server cipher algorithm; client offers [rot13], server offers [test-cipher,test-aead]")
        XCTAssertEqual((connection.delegate.closedError.first as? SSHProtocolError)?.code, "SSH_KEX_NO_COMMON_ALGORITHM")
        XCTAssertFalse(connection.isActive)
    }

    func testAEADCipherIsUsedWithoutMAC() throws {
        let connection = try TestConnection()
        try connection.sendRaw("SSH-2.0-TestClient\r\n")
        try connection.drain()
        try connection.sendKexInit(connection.kexInit(cipher: ["test-aead"]))
        try connection.finishKex()  // FakeCrypto preconditions that AEAD gets no MAC
        XCTAssertTrue(connection.isActive)
    }

    func testUnknownMessageGetsUnimplementedWithItsSequenceNumber() throws {
        let connection = try TestConnection()
        try connection.handshake(strict: true)
        try connection.drain()
        let sequence = connection.outSequence
        try connection.send(ByteBuffer(bytes: [199, 1, 2, 3]))
        let replies = try connection.drain()
        XCTAssertEqual(replies.count, 1)
        guard case .unimplemented(let number) = try SSHMessage.parse(replies[0]) else { return XCTFail() }
        XCTAssertEqual(number, sequence)
    }

    func testPeerDisconnectIsReported() throws {
        let connection = try TestConnection()
        try connection.handshake()
        try connection.send(SSHMessageWriter.disconnect(reason: 11, description: "bye"))
        XCTAssertFalse(connection.isActive)
        XCTAssertEqual(connection.delegate.closedError.count, 1)
        XCTAssertEqual(connection.delegate.closedError.first as? SSHPeerDisconnected, SSHPeerDisconnected(reason: 11, description: "bye"))
    }

    func testOwnDisconnectSendsReasonAndCloses() throws {
        let connection = try TestConnection()
        try connection.handshake()
        connection.handler.disconnect(reason: SSHDisconnectReason.byApplication, description: "shutting down")
        try connection.drain()
        XCTAssertEqual(connection.disconnectMessage()?.reason, SSHDisconnectReason.byApplication)
        XCTAssertEqual(connection.disconnectMessage()?.description, "shutting down")
        XCTAssertFalse(connection.isActive)
        XCTAssertEqual(connection.delegate.closedError.count, 1)
    }

    // MARK: rekeying

    /// Client-initiated rekey in the middle of a transfer: server output written while the kex
    /// runs is held until our NEWKEYS and then goes out complete and in order under the new keys.
    func testClientRekeyHoldsOutputUntilNewKeys() throws {
        let connection = try TestConnection()
        try connection.login()
        let (serverID, channel) = try connection.openSession()
        let channelDelegate = connection.delegate.channelDelegates[0]
        channelDelegate.autoConsume = false
        let half = Int(connection.settings.windowSize / 2)
        for _ in 0..<(half / 32768) { try connection.sendData(serverID, Array(repeating: 1, count: 32768)) }
        channel.write(ByteBuffer(string: "before-"), promise: nil)
        try connection.drain()
        connection.received.removeAll()

        try connection.sendKexInit(connection.kexInit())
        XCTAssertEqual(try connection.drainNumbers(), [20], "our KEXINIT answers at once")
        // Output and control messages produced now must wait.
        var written = false
        let promise = connection.channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenSuccess { written = true }
        channel.write(ByteBuffer(string: "during-"), promise: promise)
        channel.sendRequest(type: "exit-status", wantReply: false, payload: ByteBuffer(bytes: [0, 0, 0, 0]), promise: nil)
        channel.consumed(half)
        XCTAssertEqual(connection.handler.transport.heldMessageCount, 1, "the WINDOW_ADJUST is held by the transport")
        XCTAssertEqual(try connection.drainNumbers(), [], "nothing but kex messages while the kex runs")
        XCTAssertFalse(written)
        try connection.finishKex()
        XCTAssertTrue(written)
        channel.write(ByteBuffer(string: "after"), promise: nil)
        try connection.drain()
        XCTAssertEqual(connection.received.map { $0.messageNumber! }, [20, 31, 21, 93, 94, 98, 94])
        var data = ""
        for payload in connection.received {
            if case .channelData(_, let bytes)? = try? SSHMessage.parse(payload) { data += String(buffer: bytes) }
        }
        XCTAssertEqual(data, "during-after")
        XCTAssertEqual(connection.handler.transport.keyExchangeCount, 2)
    }

    /// Server-initiated rekey by volume, many times over, with data both ways and nothing lost.
    func testServerRekeysByVolumeWithoutLosingData() throws {
        var settings = try TestConnection.defaultSettings()
        settings.rekeyBytes = 10_000
        let connection = try TestConnection(settings: settings)
        try connection.login()
        let (serverID, channel) = try connection.openSession(window: UInt32.max)
        let channelDelegate = connection.delegate.channelDelegates[0]

        var expectedIn: [UInt8] = []
        var expectedOut: [UInt8] = []
        var serverKexInits = 0
        for round in 0..<200 {
            let chunk = (0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ round) }
            try connection.sendData(serverID, chunk)
            expectedIn += chunk
            // Written in two pieces so some land while a kex runs.
            channel.write(ByteBuffer(bytes: chunk.reversed()), promise: nil)
            expectedOut += chunk.reversed()
            for payload in try connection.drain() where payload.messageNumber == SSHMessageNumber.kexInit {
                serverKexInits += 1
                try connection.sendKexInit(connection.kexInit())
                channel.write(ByteBuffer(bytes: chunk), promise: nil)
                expectedOut += chunk
                try connection.finishKex()
            }
        }
        try connection.drain()
        var gotOut: [UInt8] = []
        for payload in connection.received {
            if case .channelData(_, let data)? = try? SSHMessage.parse(payload) { gotOut += Array(data.readableBytesView) }
        }
        XCTAssertGreaterThan(serverKexInits, 10, "the server rekeyed repeatedly")
        XCTAssertEqual(connection.handler.transport.keyExchangeCount, serverKexInits + 1)
        XCTAssertEqual(Array(channelDelegate.received.readableBytesView), expectedIn)
        XCTAssertEqual(gotOut, expectedOut)
        XCTAssertTrue(connection.isActive)
    }

    func testServerRekeysAfterTheInterval() throws {
        var settings = try TestConnection.defaultSettings()
        settings.rekeyInterval = .minutes(10)
        let connection = try TestConnection(settings: settings)
        try connection.login()
        connection.received.removeAll()
        connection.channel.embeddedEventLoop.advanceTime(by: .minutes(9))
        XCTAssertEqual(try connection.drainNumbers(), [])
        connection.channel.embeddedEventLoop.advanceTime(by: .minutes(1))
        XCTAssertEqual(try connection.drainNumbers(), [20])
        try connection.sendKexInit(connection.kexInit())
        try connection.finishKex()
        XCTAssertEqual(connection.handler.transport.keyExchangeCount, 2)
        // The interval restarts with each completed exchange.
        connection.channel.embeddedEventLoop.advanceTime(by: .minutes(10))
        XCTAssertEqual(try connection.drainNumbers(), [20])
    }

    func testNonKexMessageAfterClientKexInitIsAProtocolError() throws {
        let connection = try TestConnection()
        try connection.login()
        let (serverID, _) = try connection.openSession()
        try connection.sendKexInit(connection.kexInit())
        try connection.sendData(serverID, [1, 2, 3])
        XCTAssertFalse(connection.isActive)
        XCTAssertEqual((connection.delegate.closedError.first as? SSHProtocolError)?.code, "SSH_UNEXPECTED_MESSAGE")
    }

    /// After a server-initiated KEXINIT the client may still send data it sent before seeing ours.
    func testInboundDataBeforeClientKexInitIsProcessed() throws {
        let connection = try TestConnection()
        try connection.login()
        let (serverID, _) = try connection.openSession()
        try connection.handler.transport.requestKeyExchange()
        connection.handler.outputReady()
        XCTAssertEqual(try connection.drainNumbers(), [20])
        try connection.sendData(serverID, Array("in flight".utf8))
        XCTAssertEqual(String(buffer: connection.delegate.channelDelegates[0].received), "in flight")
        try connection.sendKexInit(connection.kexInit())
        try connection.finishKex()
        XCTAssertTrue(connection.isActive)
    }
}
