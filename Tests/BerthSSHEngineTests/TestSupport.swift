import BerthSSHCipher
import BerthSSHKex
import BerthSSHKeys
import BerthSSHWire
import NIOCore
import NIOEmbedded
import XCTest

@testable import BerthSSHEngine

// Transparent stand-ins for the cipher and kex modules: every packet carries the first four bytes
// of its direction's encryption key and its sequence number in clear, and the opener insists on
// both, so a test sees exactly which keys and which sequence numbers protect each packet.

struct TaggedSealer: SSHPacketSealer {
    var tag: [UInt8]
    mutating func seal(payload: ByteBuffer, sequenceNumber: UInt32, into out: inout ByteBuffer) throws {
        out.writeInteger(UInt32(8 + payload.readableBytes))
        out.writeBytes(tag)
        out.writeInteger(sequenceNumber)
        out.writeImmutableBuffer(payload)
    }
}

struct TaggedOpener: SSHPacketOpener {
    var tag: [UInt8]
    mutating func open(from buffer: inout ByteBuffer, sequenceNumber: UInt32) throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length >= 8, length <= 300_000 else { throw SSHProtocolError("TEST_BAD_LENGTH", "length \(length)") }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let tag = buffer.readBytes(length: 4)!
        let sequence = buffer.readInteger(as: UInt32.self)!
        guard tag == self.tag else {
            throw SSHProtocolError("TEST_WRONG_KEY", "packet \(sequenceNumber) sealed with key \(tag), expected \(self.tag)")
        }
        guard sequence == sequenceNumber else {
            throw SSHProtocolError("TEST_WRONG_SEQUENCE", "packet sealed with sequence number \(sequence), expected \(sequenceNumber)")
        }
        return buffer.readSlice(length: Int(length) - 8)!
    }
}

/// "test-kex": the client sends message 30, the server answers 31 and is done. H is
/// SHA-256(I_C || I_S), so every exchange has a different H, and the test client can compute it.
struct FakeKex: SSHServerKeyExchange {
    var context: SSHKexContext
    static let sharedSecret: [UInt8] = [0, 0, 0, 1, 42]

    mutating func receive(_ message: ByteBuffer) throws -> (replies: [ByteBuffer], done: SSHKexOutput?) {
        guard message.getInteger(at: message.readerIndex, as: UInt8.self) == 30 else {
            throw SSHProtocolError("TEST_KEX_UNEXPECTED", "fake kex got \(message.getInteger(at: message.readerIndex, as: UInt8.self) ?? 0)")
        }
        var reply = ByteBuffer()
        reply.writeInteger(UInt8(31))
        let hash = FakeKex.exchangeHash(clientKexInit: context.clientKexInit, serverKexInit: context.serverKexInit)
        return ([reply], SSHKexOutput(exchangeHash: hash, sharedSecret: Self.sharedSecret, hash: .sha256))
    }

    static func exchangeHash(clientKexInit: [UInt8], serverKexInit: [UInt8]) -> [UInt8] {
        SSHKexHash.sha256.digest(clientKexInit + serverKexInit)
    }
}

struct FakeCrypto: SSHCryptoProvider {
    func makeServerKex(name: String, context: SSHKexContext) throws -> any SSHServerKeyExchange {
        guard name == "test-kex" || name == "test-kex2" else { throw SSHProtocolError("TEST_NO_KEX", name) }
        return FakeKex(context: context)
    }
    func makeClientKex(name: String, context: SSHClientKexContext) throws -> any SSHClientKeyExchange {
        try SSHKexAlgorithms.makeClient(name: name, context: context)
    }
    func isAEAD(cipher: String) -> Bool { cipher == "test-aead" }
    func keyLength(cipher: String) -> Int { 4 }
    func ivLength(cipher: String) -> Int { 4 }
    func keyLength(mac: String) -> Int { 4 }
    func makeSealer(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketSealer {
        precondition(isAEAD(cipher: cipher) == (mac == nil))
        return TaggedSealer(tag: key)
    }
    func makeOpener(cipher: String, mac: String?, key: [UInt8], iv: [UInt8], macKey: [UInt8]) throws -> any SSHPacketOpener {
        precondition(isAEAD(cipher: cipher) == (mac == nil))
        return TaggedOpener(tag: key)
    }
    func plainSealer() -> any SSHPacketSealer { TaggedSealer(tag: [0, 0, 0, 0]) }
    func plainOpener() -> any SSHPacketOpener { TaggedOpener(tag: [0, 0, 0, 0]) }
}

/// A scriptable server delegate that records what it is told.
final class RecordingServerDelegate: SSHServerDelegate {
    var clientVersion: String?
    var sshAuthMethods: [String] = ["publickey", "password"]
    var authRequests: [SSHAuthRequest] = []
    var pendingAuth: [EventLoopPromise<SSHAuthResult>] = []
    /// nil: keep the promise in `pendingAuth` for the test to answer.
    var authAnswer: ((SSHAuthRequest) -> SSHAuthResult)? = { request in
        if case .password("secret") = request.method { return .success }
        return .failure(partialSuccess: false)
    }
    var openRequests: [SSHChannelOpenRequest] = []
    var openedChannels: [SSHChannel] = []
    var pendingOpens: [EventLoopPromise<Void>] = []
    var openAnswer: ((SSHChannelOpenRequest) -> SSHChannelOpenError?)? = { _ in nil }
    var makeChannelDelegate: () -> RecordingChannelDelegate = { RecordingChannelDelegate() }
    var channelDelegates: [RecordingChannelDelegate] = []
    var globalRequests: [SSHGlobalRequest] = []
    var pendingGlobal: [EventLoopPromise<ByteBuffer>] = []
    var closedError: [(any Error)?] = []

    func sshClientVersion(_ version: String) { clientVersion = version }

    func sshAuthenticate(_ request: SSHAuthRequest, promise: EventLoopPromise<SSHAuthResult>) {
        authRequests.append(request)
        if let authAnswer { promise.succeed(authAnswer(request)) } else { pendingAuth.append(promise) }
    }

    func sshChannelOpen(_ request: SSHChannelOpenRequest, channel: SSHChannel, promise: EventLoopPromise<Void>) {
        openRequests.append(request)
        let channelDelegate = makeChannelDelegate()
        channelDelegates.append(channelDelegate)
        channel.delegate = channelDelegate
        openedChannels.append(channel)
        guard let openAnswer else {
            pendingOpens.append(promise)
            return
        }
        if let error = openAnswer(request) { promise.fail(error) } else { promise.succeed(()) }
    }

    func sshGlobalRequest(_ request: SSHGlobalRequest, promise: EventLoopPromise<ByteBuffer>) {
        globalRequests.append(request)
        pendingGlobal.append(promise)
    }

    func sshConnectionClosed(error: (any Error)?) { closedError.append(error) }
}

final class RecordingChannelDelegate: SSHChannelDelegate {
    var received = ByteBuffer()
    var receivedExtended: [UInt32: ByteBuffer] = [:]
    var eofCount = 0
    var requests: [SSHChannelRequest] = []
    var writabilityChanges: [Bool] = []
    var closedCount = 0
    /// Consume data as it arrives (true) or leave the window to the test.
    var autoConsume = true
    var onRequest: ((SSHChannel, SSHChannelRequest) -> Void)?

    func sshChannel(_ channel: SSHChannel, received data: ByteBuffer, extendedType: UInt32?) {
        var data = data
        let count = data.readableBytes
        if let extendedType {
            receivedExtended[extendedType, default: ByteBuffer()].writeBuffer(&data)
        } else {
            received.writeBuffer(&data)
        }
        if autoConsume { channel.consumed(count) }
    }
    func sshChannelEOF(_ channel: SSHChannel) { eofCount += 1 }
    func sshChannel(_ channel: SSHChannel, request: SSHChannelRequest) {
        requests.append(request)
        onRequest?(channel, request)
    }
    func sshChannelWritabilityChanged(_ channel: SSHChannel) { writabilityChanges.append(channel.isWritable) }
    func sshChannelClosed(_ channel: SSHChannel) { closedCount += 1 }
}

/// A minimal SSH client for the tagged stand-in crypto, driving an SSHServerHandler in an
/// EmbeddedChannel packet by packet.
final class TestConnection {
    let channel: EmbeddedChannel
    let handler: SSHServerHandler
    let delegate: RecordingServerDelegate
    var settings: SSHServerSettings

    private var sealer = TaggedSealer(tag: [0, 0, 0, 0])
    private var opener = TaggedOpener(tag: [0, 0, 0, 0])
    private var pendingOpener: TaggedOpener?
    var outSequence: UInt32 = 0
    var inSequence: UInt32 = 0
    private var inbound = ByteBuffer()
    var serverVersionLine: String?
    var strict = false
    var sessionID: [UInt8]?
    var clientKexInit: [UInt8] = []
    var serverKexInit: [UInt8] = []
    /// Every payload the server sent, in order, once parsed off the wire.
    var received: [ByteBuffer] = []

    static func defaultSettings() throws -> SSHServerSettings {
        var settings = SSHServerSettings(hostKeys: [try SSHPrivateKey.generate(.ed25519)])
        settings.kex = ["test-kex"]
        settings.ciphers = ["test-cipher", "test-aead"]
        settings.macs = ["test-mac"]
        return settings
    }

    init(settings: SSHServerSettings? = nil, delegate: RecordingServerDelegate = RecordingServerDelegate()) throws {
        self.settings = try settings ?? Self.defaultSettings()
        self.delegate = delegate
        channel = EmbeddedChannel()
        handler = SSHServerHandler(settings: self.settings, delegate: delegate, crypto: FakeCrypto())
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 22)).wait()
    }

    // MARK: wire

    func sendRaw(_ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
        channel.embeddedEventLoop.run()
    }

    func send(_ payload: ByteBuffer) throws {
        var out = ByteBuffer()
        try sealer.seal(payload: payload, sequenceNumber: outSequence, into: &out)
        outSequence &+= 1
        try channel.writeInbound(out)
        channel.embeddedEventLoop.run()
    }

    func send(_ build: (inout ByteBuffer) -> Void) throws {
        var payload = ByteBuffer()
        build(&payload)
        try send(payload)
    }

    var isActive: Bool { channel.isActive }

    /// Collects everything the server wrote so far into `received`; returns the new payloads.
    @discardableResult
    func drain() throws -> [ByteBuffer] {
        channel.embeddedEventLoop.run()
        while let chunk = try channel.readOutbound(as: ByteBuffer.self) {
            var chunk = chunk
            inbound.writeBuffer(&chunk)
        }
        if serverVersionLine == nil, let newline = inbound.readableBytesView.firstIndex(of: UInt8(ascii: "\n")) {
            let length = newline - inbound.readerIndex + 1
            serverVersionLine = inbound.readString(length: length)?.trimmingCharacters(in: .newlines)
        }
        guard serverVersionLine != nil else { return [] }
        var fresh: [ByteBuffer] = []
        while let payload = try opener.open(from: &inbound, sequenceNumber: inSequence) {
            inSequence &+= 1
            fresh.append(payload)
            received.append(payload)
            let number: UInt8 = payload.getInteger(at: payload.readerIndex)!
            if number == SSHMessageNumber.kexInit { serverKexInit = Array(payload.readableBytesView) }
            if number == SSHMessageNumber.newKeys {
                opener = pendingOpener!
                pendingOpener = nil
                if strict { inSequence = 0 }
            }
        }
        return fresh
    }

    /// The next payloads' message numbers.
    func drainNumbers() throws -> [UInt8] {
        try drain().map { $0.getInteger(at: $0.readerIndex)! }
    }

    // MARK: handshake

    func kexInit(
        kex: [String] = ["test-kex"], cipher: [String] = ["test-cipher"], follows: Bool = false,
        hostKey: [String] = ["ssh-ed25519"]
    ) -> ByteBuffer {
        var kexInit = SSHKexInit(
            cookie: (0..<16).map { _ in UInt8.random(in: 0...255) }, kexAlgorithms: kex,
            serverHostKeyAlgorithms: hostKey, ciphers: cipher, macs: ["test-mac"])
        kexInit.firstKexPacketFollows = follows
        return kexInit.payload
    }

    func sendKexInit(_ payload: ByteBuffer) throws {
        clientKexInit = Array(payload.readableBytesView)
        try send(payload)
    }

    /// Sends the fake kex message and NEWKEYS after reading the server's answer; switches keys.
    func finishKex() throws {
        try send(ByteBuffer(bytes: [30]))
        let hash = FakeKex.exchangeHash(clientKexInit: clientKexInit, serverKexInit: serverKexInit)
        if sessionID == nil { sessionID = hash }
        func key(_ letter: Character) -> [UInt8] {
            SSHKeyDerivation.derive(
                hash: .sha256, sharedSecret: FakeKex.sharedSecret, exchangeHash: hash,
                sessionID: sessionID!, letter: letter.asciiValue!, length: 4)
        }
        pendingOpener = TaggedOpener(tag: key("D"))
        try drain()
        try send(ByteBuffer(bytes: [SSHMessageNumber.newKeys]))
        // The fake crypto reads only the key tag; our NEWKEYS has gone, so we switch now.
        sealer = TaggedSealer(tag: key("C"))
        if strict { outSequence = 0 }
    }

    func handshake(strict: Bool = true, extInfo: Bool = true) throws {
        self.strict = strict
        try sendRaw("SSH-2.0-TestClient_1.0\r\n")
        var kex = ["test-kex"]
        if extInfo { kex.append("ext-info-c") }
        if strict { kex.append("kex-strict-c-v00@openssh.com") }
        try drain()
        try sendKexInit(kexInit(kex: kex))
        try finishKex()
        channel.embeddedEventLoop.run()
    }

    /// Handshake, service request and password login.
    func login() throws {
        try handshake()
        try send {
            $0.writeSSHUInt8(SSHMessageNumber.serviceRequest); $0.writeSSHText("ssh-userauth")
        }
        try sendPassword("secret")
        try drain()
    }

    func sendPassword(_ password: String, user: String = "alice") throws {
        try send { b in
            b.writeSSHUInt8(SSHMessageNumber.userauthRequest)
            b.writeSSHText(user)
            b.writeSSHText("ssh-connection")
            b.writeSSHText("password")
            b.writeSSHBool(false)
            b.writeSSHText(password)
        }
    }

    /// Opens a session channel; returns the server's channel id and the server-side SSHChannel.
    func openSession(clientID: UInt32 = 0, window: UInt32 = 1 << 20, maxPacket: UInt32 = 32768) throws -> (UInt32, SSHChannel) {
        try send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelOpen)
            b.writeSSHText("session")
            b.writeSSHUInt32(clientID)
            b.writeSSHUInt32(window)
            b.writeSSHUInt32(maxPacket)
        }
        let replies = try drain()
        guard let confirmation = replies.last(where: { $0.getInteger(at: $0.readerIndex, as: UInt8.self) == SSHMessageNumber.channelOpenConfirmation }) else {
            throw SSHProtocolError("TEST_NO_CONFIRMATION", "no confirmation in \(replies)")
        }
        var b = confirmation
        b.moveReaderIndex(forwardBy: 5)
        let serverID = b.readSSHUInt32()!
        return (serverID, delegate.openedChannels.last!)
    }

    func sendData(_ serverID: UInt32, _ bytes: [UInt8]) throws {
        try send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelData)
            b.writeSSHUInt32(serverID)
            b.writeSSHString(bytes)
        }
    }

    func sendChannelRequest(_ serverID: UInt32, type: String, wantReply: Bool, extra: [UInt8] = []) throws {
        try send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelRequest)
            b.writeSSHUInt32(serverID)
            b.writeSSHText(type)
            b.writeSSHBool(wantReply)
            b.writeBytes(extra)
        }
    }

    /// The DISCONNECT the server sent, if any.
    func disconnectMessage() -> (reason: UInt32, description: String)? {
        for payload in received {
            if case .disconnect(let reason, let description)? = try? SSHMessage.parse(payload) { return (reason, description) }
        }
        return nil
    }
}

extension ByteBuffer {
    var messageNumber: UInt8? { getInteger(at: readerIndex) }
}
