import BerthSSHWire
import NIOCore
import XCTest

@testable import BerthSSHEngine

final class ConnectionTests: XCTestCase {
    private func loggedIn(
        _ configure: (inout SSHServerSettings) -> Void = { _ in },
        delegate: RecordingServerDelegate = RecordingServerDelegate()
    ) throws -> TestConnection {
        var settings = try TestConnection.defaultSettings()
        configure(&settings)
        let connection = try TestConnection(settings: settings, delegate: delegate)
        try connection.login()
        connection.received.removeAll()
        return connection
    }

    private func closeCode(_ connection: TestConnection) -> String? {
        (connection.delegate.closedError.first as? SSHProtocolError)?.code
    }

    private func sendOpen(_ connection: TestConnection, type: String, clientID: UInt32 = 5, _ body: (inout ByteBuffer) -> Void = { _ in }) throws {
        try connection.send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelOpen)
            b.writeSSHText(type)
            b.writeSSHUInt32(clientID)
            b.writeSSHUInt32(1 << 20)
            b.writeSSHUInt32(32768)
            body(&b)
        }
    }

    private func channelData(_ payloads: [ByteBuffer]) -> String {
        var text = ""
        for payload in payloads {
            if case .channelData(_, let data)? = try? SSHMessage.parse(payload) { text += String(buffer: data) }
        }
        return text
    }

    // MARK: opening

    func testOpenTypesReachTheDelegateTyped() throws {
        let connection = try loggedIn()
        try sendOpen(connection, type: "session", clientID: 1)
        try sendOpen(connection, type: "direct-tcpip", clientID: 2) { b in
            b.writeSSHText("example.com")
            b.writeSSHUInt32(443)
            b.writeSSHText("10.0.0.1")
            b.writeSSHUInt32(50000)
        }
        try sendOpen(connection, type: "direct-streamlocal@openssh.com", clientID: 3) { b in
            b.writeSSHText("/run/app.sock")
            b.writeSSHText("")
            b.writeSSHUInt32(0)
        }
        try sendOpen(connection, type: "x11", clientID: 4) { b in
            b.writeSSHText("127.0.0.1")
            b.writeSSHUInt32(6010)
        }
        XCTAssertEqual(
            connection.delegate.openRequests,
            [
                .session,
                .directTCPIP(host: "example.com", port: 443, originatorHost: "10.0.0.1", originatorPort: 50000),
                .directStreamLocal(path: "/run/app.sock"),
                .other(type: "x11"),
            ])
        let confirmations = try connection.drain()
        XCTAssertEqual(confirmations.count, 4)
        for (index, payload) in confirmations.enumerated() {
            guard case .channelOpenConfirmation(let recipient, _, let window, let maxPacket, _) = try SSHMessage.parse(payload) else { return XCTFail() }
            XCTAssertEqual(recipient, UInt32(index + 1))
            XCTAssertEqual(window, connection.settings.windowSize)
            XCTAssertEqual(maxPacket, connection.settings.maxPacketSize)
        }
        XCTAssertEqual(Set(connection.delegate.openedChannels.map(\.localID)).count, 4, "distinct local ids")
    }

    func testRefusalCarriesReasonAndMessage() throws {
        let delegate = RecordingServerDelegate()
        delegate.openAnswer = { _ in SSHChannelOpenError(reason: SSHChannelOpenError.administrativelyProhibited, message: "forwarding disabled") }
        let connection = try loggedIn(delegate: delegate)
        try sendOpen(connection, type: "direct-tcpip", clientID: 9) { b in
            b.writeSSHText("h")
            b.writeSSHUInt32(1)
            b.writeSSHText("o")
            b.writeSSHUInt32(2)
        }
        let replies = try connection.drain()
        guard case .channelOpenFailure(let recipient, let reason, let description) = try SSHMessage.parse(replies[0]) else { return XCTFail() }
        XCTAssertEqual(recipient, 9)
        XCTAssertEqual(reason, 1)
        XCTAssertEqual(description, "forwarding disabled")
        XCTAssertEqual(connection.delegate.channelDelegates[0].closedCount, 0, "a refused channel was never open")
    }

    func testRefusedOpenFailsQueuedWritesAndCompletesClose() throws {
        let delegate = RecordingServerDelegate()
        delegate.openAnswer = nil
        let connection = try loggedIn(delegate: delegate)
        try sendOpen(connection, type: "session")
        let channel = delegate.openedChannels[0]
        var writeError: (any Error)?
        var closed = false
        let write = connection.channel.eventLoop.makePromise(of: Void.self)
        write.futureResult.assumeIsolated().whenFailure { writeError = $0 }
        let close = connection.channel.eventLoop.makePromise(of: Void.self)
        close.futureResult.assumeIsolated().whenSuccess { closed = true }
        channel.write(ByteBuffer(string: "x"), promise: write)
        channel.close(promise: close)
        delegate.pendingOpens[0].fail(SSHChannelOpenError(reason: 2, message: "backend down"))
        XCTAssertEqual(writeError as? SSHChannelError, .closed)
        XCTAssertTrue(closed)
        XCTAssertTrue(channel.isClosed)
        XCTAssertEqual(try connection.drainNumbers(), [92])
    }

    func testTooManyChannelsRefusedWithoutAsking() throws {
        let delegate = RecordingServerDelegate()
        delegate.openAnswer = nil  // keep them pending: pending opens count too
        let connection = try loggedIn({ $0.maxChannels = 2 }, delegate: delegate)
        for id in 0..<3 { try sendOpen(connection, type: "session", clientID: UInt32(id)) }
        XCTAssertEqual(delegate.openRequests.count, 2)
        let replies = try connection.drain()
        guard case .channelOpenFailure(let recipient, let reason, _) = try SSHMessage.parse(replies[0]) else { return XCTFail() }
        XCTAssertEqual(recipient, 2)
        XCTAssertEqual(reason, SSHChannelOpenError.resourceShortage)
        delegate.pendingOpens[1].succeed(())
        delegate.pendingOpens[0].succeed(())
        XCTAssertEqual(try connection.drainNumbers(), [91, 91], "answers may come in any order")
    }

    // MARK: windows

    func testInboundWindowIsEnforced() throws {
        let connection = try loggedIn {
            $0.windowSize = 1000; $0.maxPacketSize = 600
        }
        let (serverID, _) = try connection.openSession()
        connection.delegate.channelDelegates[0].autoConsume = false
        try connection.sendData(serverID, Array(repeating: 1, count: 600))
        try connection.sendData(serverID, Array(repeating: 1, count: 400))
        XCTAssertTrue(connection.isActive)
        try connection.sendData(serverID, [1])
        XCTAssertEqual(closeCode(connection), "SSH_CHANNEL_WINDOW_EXCEEDED")
    }

    func testOversizedPacketIsRefused() throws {
        let connection = try loggedIn { $0.maxPacketSize = 600 }
        let (serverID, _) = try connection.openSession()
        try connection.sendData(serverID, Array(repeating: 1, count: 601))
        XCTAssertEqual(closeCode(connection), "SSH_CHANNEL_PACKET_TOO_LARGE")
    }

    func testWindowAdjustWhenHalfConsumed() throws {
        let connection = try loggedIn { $0.windowSize = 1000 }
        let (serverID, channel) = try connection.openSession()
        connection.delegate.channelDelegates[0].autoConsume = false
        try connection.sendData(serverID, Array(repeating: 1, count: 800))
        channel.consumed(499)
        XCTAssertEqual(try connection.drainNumbers(), [])
        channel.consumed(1)
        let adjust = try connection.drain()
        guard case .channelWindowAdjust(_, let bytes) = try SSHMessage.parse(adjust[0]) else { return XCTFail() }
        XCTAssertEqual(bytes, 500)
        // Window is now 700: 200 left of the first grant plus 500.
        try connection.sendData(serverID, Array(repeating: 1, count: 700))
        XCTAssertTrue(connection.isActive)
        try connection.sendData(serverID, [1])
        XCTAssertEqual(closeCode(connection), "SSH_CHANNEL_WINDOW_EXCEEDED")
    }

    func testOutboundRespectsPeerWindowAndPacketSize() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession(window: 2500, maxPacket: 1000)
        var done = false
        let promise = connection.channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenSuccess { done = true }
        channel.write(ByteBuffer(repeating: 7, count: 6000), promise: promise)
        var sizes: [Int] = []
        for payload in try connection.drain() {
            if case .channelData(_, let data) = try SSHMessage.parse(payload) { sizes.append(data.readableBytes) }
        }
        XCTAssertEqual(sizes, [1000, 1000, 500])
        XCTAssertFalse(done)
        XCTAssertEqual(channel.queuedBytes, 3500)
        try connection.send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelWindowAdjust)
            b.writeSSHUInt32(serverID)
            b.writeSSHUInt32(100_000)
        }
        sizes = []
        for payload in try connection.drain() {
            if case .channelData(_, let data) = try SSHMessage.parse(payload) { sizes.append(data.readableBytes) }
        }
        XCTAssertEqual(sizes, [1000, 1000, 1000, 500])
        XCTAssertTrue(done)
    }

    func testLargePeerPacketIsCappedAt32KiB() throws {
        let connection = try loggedIn()
        let (_, channel) = try connection.openSession(window: 1 << 20, maxPacket: 1 << 20)
        channel.write(ByteBuffer(repeating: 1, count: 100_000), promise: nil)
        let sizes = try connection.drain().compactMap { payload -> Int? in
            if case .channelData(_, let data)? = try? SSHMessage.parse(payload) { return data.readableBytes }
            return nil
        }
        XCTAssertEqual(sizes, [32768, 32768, 32768, 1696])
    }

    func testWritabilityFollowsTheHighWaterMark() throws {
        let connection = try loggedIn { $0.channelHighWaterMark = 1000 }
        let (serverID, channel) = try connection.openSession(window: 0, maxPacket: 32768)
        let recorder = connection.delegate.channelDelegates[0]
        channel.write(ByteBuffer(repeating: 1, count: 999), promise: nil)
        XCTAssertTrue(channel.isWritable)
        channel.write(ByteBuffer(repeating: 1, count: 1), promise: nil)
        XCTAssertFalse(channel.isWritable)
        XCTAssertEqual(recorder.writabilityChanges, [false])
        try connection.send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelWindowAdjust)
            b.writeSSHUInt32(serverID)
            b.writeSSHUInt32(600)
        }
        XCTAssertTrue(channel.isWritable)
        XCTAssertEqual(recorder.writabilityChanges, [false, true])
    }

    /// Small writes queued together share packets up to the peer's maximum, never mixing stdout
    /// with stderr, and every write's promise completes.
    func testSmallWritesShareAPacket() throws {
        let connection = try loggedIn()
        let (_, channel) = try connection.openSession(window: 1000, maxPacket: 5)
        connection.channel.isWritable = false
        var done: [EventLoopFuture<Void>] = []
        for piece in ["ab", "cd", "ef"] {
            let promise = connection.channel.eventLoop.makePromise(of: Void.self)
            channel.write(ByteBuffer(string: piece), promise: promise)
            done.append(promise.futureResult)
        }
        channel.write(ByteBuffer(string: "E"), extendedType: 1, promise: nil)
        channel.write(ByteBuffer(string: "g"), promise: nil)
        connection.channel.isWritable = true
        connection.channel.pipeline.fireChannelWritabilityChanged()
        let packets = try connection.drain()
        XCTAssertEqual(packets.map { $0.getInteger(at: $0.readerIndex, as: UInt8.self) }, [94, 94, 95, 94])
        XCTAssertEqual(packets.map { channelData([$0]) }, ["abcde", "f", "", "g"])
        for future in done { XCTAssertNoThrow(try future.wait()) }
    }

    func testRequestsAndEOFGoBehindQueuedData() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession(window: 10, maxPacket: 32768)
        channel.write(ByteBuffer(string: "0123456789abcdef"), promise: nil)
        var status = ByteBuffer()
        status.writeSSHUInt32(0)
        channel.sendRequest(type: "exit-status", wantReply: false, payload: status, promise: nil)
        channel.sendEOF(promise: nil)
        channel.close(promise: nil)
        XCTAssertEqual(try connection.drainNumbers(), [94], "the rest waits for the window")
        try connection.send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelWindowAdjust)
            b.writeSSHUInt32(serverID)
            b.writeSSHUInt32(100)
        }
        XCTAssertEqual(try connection.drainNumbers(), [94, 98, 96, 97])
        XCTAssertEqual(channelData(connection.received), "0123456789abcdef")
        // Writes after EOF fail.
        var failed: (any Error)?
        let promise = connection.channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenFailure { failed = $0 }
        channel.write(ByteBuffer(string: "late"), promise: promise)
        XCTAssertEqual(failed as? SSHChannelError, .closed)
    }

    func testOutputWaitsWhileTheSocketIsNotWritable() throws {
        let connection = try loggedIn()
        let (_, channel) = try connection.openSession()
        connection.channel.isWritable = false
        channel.write(ByteBuffer(string: "held back"), promise: nil)
        XCTAssertEqual(try connection.drainNumbers(), [], "no channel data into a socket that is not writable")
        XCTAssertEqual(channel.queuedBytes, 9)
        connection.channel.isWritable = true
        connection.channel.pipeline.fireChannelWritabilityChanged()
        XCTAssertEqual(channelData(try connection.drain()), "held back")
    }

    // MARK: requests

    func testChannelRepliesGoOutInRequestOrder() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession()
        try connection.sendChannelRequest(serverID, type: "env", wantReply: true)
        try connection.sendChannelRequest(serverID, type: "pty-req", wantReply: true)
        try connection.sendChannelRequest(serverID, type: "signal", wantReply: false)
        try connection.sendChannelRequest(serverID, type: "exec", wantReply: true)
        let requests = connection.delegate.channelDelegates[0].requests
        XCTAssertEqual(requests.map(\.type), ["env", "pty-req", "signal", "exec"])
        channel.reply(to: requests[3], success: true)
        channel.reply(to: requests[2], success: true)  // no reply wanted: nothing sent
        XCTAssertEqual(try connection.drainNumbers(), [])
        channel.reply(to: requests[1], success: false)
        XCTAssertEqual(try connection.drainNumbers(), [])
        channel.reply(to: requests[0], success: true)
        XCTAssertEqual(try connection.drainNumbers(), [99, 100, 99])
        channel.reply(to: requests[0], success: false)  // a second answer is ignored
        XCTAssertEqual(try connection.drainNumbers(), [])
    }

    /// A program that finishes before its exec is answered: its output, exit status, EOF and
    /// CLOSE wait for the reply (clients treat a CLOSE before the reply as a failed exec).
    func testOutputWaitsForTheReplyToTheProgramStartingRequest() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession()
        try connection.sendChannelRequest(serverID, type: "pty-req", wantReply: true)
        try connection.sendChannelRequest(serverID, type: "exec", wantReply: true)
        let requests = connection.delegate.channelDelegates[0].requests
        channel.write(ByteBuffer(string: "done\n"), promise: nil)
        channel.sendRequest(type: "exit-status", wantReply: false, payload: ByteBuffer(bytes: [0, 0, 0, 0]), promise: nil)
        channel.sendEOF(promise: nil)
        channel.close(promise: nil)
        XCTAssertEqual(try connection.drainNumbers(), [])
        channel.reply(to: requests[0], success: true)
        XCTAssertEqual(try connection.drainNumbers(), [99], "the pty-req's answer does not release the exec's output")
        channel.reply(to: requests[1], success: true)
        XCTAssertEqual(try connection.drainNumbers(), [99, 94, 98, 96, 97])
    }

    /// Requests that start nothing do not hold output back.
    func testOutputIsNotHeldForOtherRequests() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession()
        try connection.sendChannelRequest(serverID, type: "keepalive@openssh.com", wantReply: true)
        channel.write(ByteBuffer(string: "x"), promise: nil)
        XCTAssertEqual(try connection.drainNumbers(), [94])
    }

    func testTooManyPendingRequestsDisconnects() throws {
        let connection = try loggedIn { $0.maxPendingRequests = 3 }
        let (serverID, _) = try connection.openSession()
        for _ in 0..<3 { try connection.sendChannelRequest(serverID, type: "env", wantReply: true) }
        XCTAssertTrue(connection.isActive)
        try connection.sendChannelRequest(serverID, type: "env", wantReply: true)
        XCTAssertEqual(closeCode(connection), "SSH_TOO_MANY_PENDING_REQUESTS")
    }

    func testOutboundRequestRepliesAndUnexpectedReply() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession()
        var answers: [Bool] = []
        for _ in 0..<2 {
            let promise = connection.channel.eventLoop.makePromise(of: Bool.self)
            promise.futureResult.assumeIsolated().whenSuccess { answers.append($0) }
            channel.sendRequest(type: "keepalive@openssh.com", wantReply: true, payload: ByteBuffer(), promise: promise)
        }
        XCTAssertEqual(try connection.drainNumbers(), [98, 98])
        try connection.send(SSHMessageWriter.channel(SSHMessageNumber.channelFailure, recipient: serverID))
        try connection.send(SSHMessageWriter.channel(SSHMessageNumber.channelSuccess, recipient: serverID))
        XCTAssertEqual(answers, [false, true])
        try connection.send(SSHMessageWriter.channel(SSHMessageNumber.channelSuccess, recipient: serverID))
        XCTAssertEqual(closeCode(connection), "SSH_UNEXPECTED_CHANNEL_REPLY")
    }

    // MARK: EOF and CLOSE

    func testPeerEOFThenCloseClosesOnce() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession()
        let recorder = connection.delegate.channelDelegates[0]
        channel.write(ByteBuffer(string: "pending"), promise: nil)  // not pumped yet: dropped by the CLOSE
        try connection.send(SSHMessageWriter.channel(SSHMessageNumber.channelEOF, recipient: serverID))
        try connection.send(SSHMessageWriter.channel(SSHMessageNumber.channelEOF, recipient: serverID))
        XCTAssertEqual(recorder.eofCount, 1)
        try connection.send(SSHMessageWriter.channel(SSHMessageNumber.channelClose, recipient: serverID))
        XCTAssertEqual(recorder.closedCount, 1)
        XCTAssertTrue(channel.isClosed)
        XCTAssertEqual(try connection.drainNumbers().filter { $0 == 97 }.count, 1, "our CLOSE answers once")
        // The id is gone now: anything more for it is a protocol error.
        try connection.sendData(serverID, [1])
        XCTAssertEqual(closeCode(connection), "SSH_UNKNOWN_CHANNEL")
    }

    func testOurCloseThenPeerCloseAndLateDataIgnored() throws {
        let connection = try loggedIn()
        let (serverID, channel) = try connection.openSession()
        let recorder = connection.delegate.channelDelegates[0]
        var closed = false
        let promise = connection.channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.assumeIsolated().whenSuccess { closed = true }
        channel.close(promise: promise)
        XCTAssertEqual(try connection.drainNumbers(), [97])
        XCTAssertFalse(closed)
        try connection.sendData(serverID, Array("late".utf8))  // crossed our CLOSE: ignored
        try connection.sendChannelRequest(serverID, type: "env", wantReply: true)
        XCTAssertEqual(try connection.drainNumbers(), [], "no reply after our CLOSE")
        XCTAssertEqual(recorder.received.readableBytes, 0)
        try connection.send(SSHMessageWriter.channel(SSHMessageNumber.channelClose, recipient: serverID))
        XCTAssertTrue(closed)
        XCTAssertEqual(recorder.closedCount, 1)
        XCTAssertTrue(connection.isActive)
    }

    func testConnectionEndClosesChannels() throws {
        let connection = try loggedIn()
        _ = try connection.openSession()
        try connection.send(SSHMessageWriter.disconnect(reason: 11, description: "bye"))
        XCTAssertEqual(connection.delegate.channelDelegates[0].closedCount, 1)
        XCTAssertEqual(connection.delegate.closedError.count, 1)
    }

    // MARK: global requests

    func testGlobalRequestsRepliedInOrder() throws {
        let connection = try loggedIn()
        func global(_ type: String, wantReply: Bool) throws {
            try connection.send(SSHMessageWriter.globalRequest(type: type, wantReply: wantReply, data: ByteBuffer(bytes: [1, 2])))
        }
        try global("tcpip-forward", wantReply: true)
        try global("keepalive@openssh.com", wantReply: true)
        try global("streamlocal-forward@openssh.com", wantReply: true)
        XCTAssertEqual(connection.delegate.globalRequests.map(\.type), ["tcpip-forward", "streamlocal-forward@openssh.com"])
        XCTAssertEqual(String(buffer: connection.delegate.globalRequests[0].payload).utf8.count, 2)
        connection.delegate.pendingGlobal[1].fail(SSHChannelError.closed)
        XCTAssertEqual(try connection.drainNumbers(), [])
        connection.delegate.pendingGlobal[0].succeed(ByteBuffer(bytes: [0, 0, 0x1F, 0x90]))
        let replies = try connection.drain()
        XCTAssertEqual(replies.map { $0.messageNumber! }, [81, 82, 82])
        guard case .requestSuccess(let data) = try SSHMessage.parse(replies[0]) else { return XCTFail() }
        XCTAssertEqual(Array(data.readableBytesView), [0, 0, 0x1F, 0x90])
    }

    func testNoMoreSessions() throws {
        let connection = try loggedIn()
        try connection.send(SSHMessageWriter.globalRequest(type: "no-more-sessions@openssh.com", wantReply: false, data: ByteBuffer()))
        try sendOpen(connection, type: "session")
        let replies = try connection.drain()
        guard case .channelOpenFailure(_, let reason, _) = try SSHMessage.parse(replies[0]) else { return XCTFail() }
        XCTAssertEqual(reason, SSHChannelOpenError.administrativelyProhibited)
        XCTAssertEqual(connection.delegate.openRequests.count, 0)
    }

    func testServerOriginatedChannelAndGlobalRequest() throws {
        let connection = try loggedIn()
        let channelDelegate = RecordingChannelDelegate()
        var payload = ByteBuffer()
        payload.writeSSHText("127.0.0.1")
        payload.writeSSHUInt32(8080)
        payload.writeSSHText("10.0.0.2")
        payload.writeSSHUInt32(40000)
        var opened: SSHChannel?
        connection.handler.openChannel(type: "forwarded-tcpip", payload: payload, delegate: channelDelegate)
            .assumeIsolated().whenSuccess { opened = $0 }
        let open = try connection.drain()
        guard case .channelOpen(let message) = try SSHMessage.parse(open[0]) else { return XCTFail() }
        XCTAssertEqual(message.type, "forwarded-tcpip")
        try connection.send(SSHMessageWriter.channelOpenConfirmation(recipient: message.senderChannel, sender: 77, window: 1000, maxPacket: 500))
        let channel = try XCTUnwrap(opened)
        channel.write(ByteBuffer(string: "hi"), promise: nil)
        guard case .channelData(let recipient, _) = try SSHMessage.parse(try connection.drain()[0]) else { return XCTFail() }
        XCTAssertEqual(recipient, 77)

        var refused: (any Error)?
        connection.handler.openChannel(type: "forwarded-tcpip", payload: payload, delegate: channelDelegate)
            .assumeIsolated().whenFailure { refused = $0 }
        guard case .channelOpen(let second) = try SSHMessage.parse(try connection.drain()[0]) else { return XCTFail() }
        try connection.send(SSHMessageWriter.channelOpenFailure(recipient: second.senderChannel, reason: 2, description: "nope"))
        XCTAssertEqual(refused as? SSHChannelOpenError, SSHChannelOpenError(reason: 2, message: "nope"))

        var answers: [ByteBuffer?] = []
        for _ in 0..<2 {
            connection.handler.sendGlobalRequest(type: "keepalive@openssh.com", wantReply: true, payload: ByteBuffer())
                .assumeIsolated().whenSuccess { answers.append($0) }
        }
        XCTAssertEqual(try connection.drainNumbers(), [80, 80])
        try connection.send(SSHMessageWriter.requestFailure())
        try connection.send(SSHMessageWriter.requestSuccess(data: ByteBuffer(bytes: [9])))
        XCTAssertEqual(answers.count, 2)
        XCTAssertNil(answers[0])
        XCTAssertEqual(answers[1].map { Array($0.readableBytesView) }, [9])
        try connection.send(SSHMessageWriter.requestSuccess(data: ByteBuffer()))
        XCTAssertEqual(closeCode(connection), "SSH_UNEXPECTED_GLOBAL_REPLY")
    }
}
