import BerthSSHCipher
import BerthSSHKex
import BerthSSHKeys
import BerthSSHWire
import NIOCore

/// Which side of the connection this transport is. The roles differ only in the kex markers they
/// announce and look for, which kex machine runs, who verifies the host key, and the key letters.
enum SSHRole {
    case server
    case client
}

/// What the transport needs to know about its configuration.
struct SSHTransportConfiguration {
    var ourVersion: String
    var kex: [String]
    var ciphers: [String]
    var macs: [String]
    var hostKeys: [any SSHHostKeySigner]
    /// Host key algorithms offered, already limited to what `hostKeys` can sign with.
    var hostKeyAlgorithms: [String]
    /// EXT_INFO `server-sig-algs`.
    var serverSignatureAlgorithms: [String]
    var rekeyBytes: UInt64
}

/// The key exchange machine of the running exchange, by role.
enum SSHKexDriver {
    case server(any SSHServerKeyExchange)
    case client(any SSHClientKeyExchange)
}

/// Events the transport reports to the layers above it. All calls are synchronous, from inside
/// `feed`, so the layers see messages in exactly the order the packets arrived.
protocol SSHTransportDelegate: AnyObject {
    func transportReceivedPeerVersion(_ version: String)
    /// A message above the transport layer (service request, user auth, connection protocol, or unknown).
    func transportReceived(_ message: SSHMessage, sequenceNumber: UInt32) throws
    func transportPeerDisconnected(reason: UInt32, description: String)
    /// Our NEWKEYS went out and the held messages with it: the layers may send freely again.
    func transportOutboundResumed()
    /// Both NEWKEYS are through; `initial` for the first key exchange.
    func transportKeyExchangeCompleted(initial: Bool)
    /// Client role: the server's host key, whose signature over H already verified with
    /// `algorithm`. Throw to refuse it (the key exchange then fails).
    func transportVerifyHostKey(_ key: SSHPublicKey, algorithm: String) throws
}

extension SSHTransportDelegate {
    func transportVerifyHostKey(_ key: SSHPublicKey, algorithm: String) throws {}
}

/// RFC 4253 transport layer: identification exchange, binary packets with sequence numbers, key
/// (re-)exchange including OpenSSH's strict kex, and the rule that while a key exchange runs
/// only transport messages go out (the others are held, in order, until our NEWKEYS).
///
/// Sealed output accumulates in `output`; the owner writes it to the socket when convenient
/// (once per read burst or event-loop tick), which is where write coalescing comes from.
final class SSHTransport {
    enum KexPhase {
        /// No key exchange running.
        case idle
        /// Our KEXINIT is out, the peer's has not arrived.
        case sentKexInit
        /// Both KEXINITs seen; kex messages flow.
        case exchanging(SSHKexDriver, SSHNegotiatedAlgorithms)
        /// We sent NEWKEYS (and switched outbound keys); the peer's NEWKEYS switches inbound.
        case awaitingPeerNewKeys(any SSHPacketOpener)
    }

    let role: SSHRole
    let configuration: SSHTransportConfiguration
    let crypto: any SSHCryptoProvider
    weak var delegate: (any SSHTransportDelegate)?

    /// Sealed bytes waiting to be written to the socket.
    var output: ByteBuffer

    private var versionReader = SSHVersionReader()
    private(set) var peerVersion: String?
    private var inbound = ByteBuffer()
    private var sealer: any SSHPacketSealer
    private var opener: any SSHPacketOpener
    private(set) var outboundSequence: UInt32 = 0
    private(set) var inboundSequence: UInt32 = 0

    private(set) var phase: KexPhase = .idle
    private(set) var sessionID: [UInt8]?
    private(set) var strictKex = false
    /// True once the peer's first NEWKEYS arrived: the peer may now send higher-layer messages.
    private(set) var initialKexDone = false
    private(set) var keyExchangeCount = 0
    private var ourKexInit: SSHKexInit?
    private var ourKexInitPayload: [UInt8] = []
    private var peerKexInitPayload: [UInt8] = []
    private var ignoreNextPacket = false
    private var peerWantsExtInfo = false
    private var sawFirstPeerKexInit = false
    /// Higher-layer messages submitted while a key exchange was running.
    private var held = CircularBuffer<ByteBuffer>()
    private(set) var bytesSinceKex: UInt64 = 0
    private var packetsSinceKex: UInt64 = 0
    private(set) var isClosed = false

    /// Non-strict peers' sequence numbers wrap after 2^32 packets; rekey well before.
    static let rekeyPackets: UInt64 = 1 << 31

    init(
        role: SSHRole, configuration: SSHTransportConfiguration, crypto: any SSHCryptoProvider,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        self.role = role
        self.configuration = configuration
        self.crypto = crypto
        sealer = crypto.plainSealer()
        opener = crypto.plainOpener()
        output = allocator.buffer(capacity: 4096)
    }

    /// Higher-layer messages may go out right now (else `send` holds them).
    var canSendNonKexMessages: Bool {
        switch phase {
        case .idle, .awaitingPeerNewKeys: return !isClosed
        case .sentKexInit, .exchanging: return false
        }
    }

    var isKeyExchangeRunning: Bool {
        if case .idle = phase { return false }
        return true
    }

    var heldMessageCount: Int { held.count }

    // MARK: start

    /// Identification line and our first KEXINIT, at once (RFC 4253 §4.2 allows not waiting).
    func start() throws {
        output.writeString(configuration.ourVersion)
        output.writeString("\r\n")
        try sendKexInit()
    }

    // MARK: outbound

    /// Sends a higher-layer message, or holds it while a key exchange runs.
    func send(_ payload: ByteBuffer) throws {
        guard !isClosed else { return }
        if canSendNonKexMessages {
            try seal(payload)
        } else {
            held.append(payload)
        }
    }

    /// Transport messages that may go out in the middle of a key exchange (RFC 4253 §7.1: 1…19 except 5/6).
    func sendTransportMessage(_ payload: ByteBuffer) throws {
        guard !isClosed else { return }
        try seal(payload)
    }

    func sendUnimplemented(sequenceNumber: UInt32) throws {
        try sendTransportMessage(SSHMessageWriter.unimplemented(sequenceNumber: sequenceNumber))
    }

    /// DISCONNECT with the keys in force; nothing is sent or processed after it.
    func sendDisconnect(reason: UInt32, description: String) {
        guard !isClosed else { return }
        try? seal(SSHMessageWriter.disconnect(reason: reason, description: description))
        isClosed = true
        held.removeAll()
    }

    /// Server-initiated rekey (time or volume). Ignored while one runs or before the first is done.
    func requestKeyExchange() throws {
        guard !isClosed, initialKexDone, case .idle = phase else { return }
        try sendKexInit()
    }

    private func seal(_ payload: ByteBuffer) throws {
        try sealer.seal(payload: payload, sequenceNumber: outboundSequence, into: &output)
        outboundSequence &+= 1
        try countTraffic(payload.readableBytes)
    }

    private func countTraffic(_ bytes: Int) throws {
        bytesSinceKex &+= UInt64(bytes)
        packetsSinceKex &+= 1
        if initialKexDone, case .idle = phase, !isClosed,
            bytesSinceKex >= configuration.rekeyBytes || packetsSinceKex >= Self.rekeyPackets
        {
            try sendKexInit()
        }
    }

    private func sendKexInit() throws {
        var cookie = [UInt8](repeating: 0, count: 16)
        var generator = SystemRandomNumberGenerator()
        for index in cookie.indices { cookie[index] = generator.next() }
        // The strict-kex marker goes on every KEXINIT: only the first one's matters to the peer.
        let markers =
            role == .server
            ? [SSHKexMarker.strictServer] : [SSHKexMarker.extInfoClient, SSHKexMarker.strictClient]
        let kexInit = SSHKexInit(
            cookie: cookie,
            kexAlgorithms: configuration.kex + markers,
            serverHostKeyAlgorithms: configuration.hostKeyAlgorithms,
            ciphers: configuration.ciphers, macs: configuration.macs)
        let payload = kexInit.payload
        ourKexInit = kexInit
        ourKexInitPayload = Array(payload.readableBytesView)
        phase = .sentKexInit
        try seal(payload)
    }

    // MARK: inbound

    /// Takes bytes from the socket and processes every complete packet in them.
    func feed(_ bytes: inout ByteBuffer) throws {
        guard !isClosed else { return }
        if inbound.readableBytes == 0 {
            inbound = bytes
        } else {
            inbound.writeBuffer(&bytes)
        }
        if peerVersion == nil {
            guard let version = try versionReader.read(from: &inbound) else { return }
            peerVersion = version
            delegate?.transportReceivedPeerVersion(version)
        }
        while !isClosed, let payload = try opener.open(from: &inbound, sequenceNumber: inboundSequence) {
            let sequenceNumber = inboundSequence
            inboundSequence &+= 1
            try handle(payload, sequenceNumber: sequenceNumber)
        }
        if inbound.readableBytes == 0 {
            inbound.clear()
        } else if inbound.readerIndex > 64 * 1024 {
            inbound.discardReadBytes()
        }
    }

    private func handle(_ payload: ByteBuffer, sequenceNumber: UInt32) throws {
        if ignoreNextPacket {
            ignoreNextPacket = false
            return
        }
        let message = try SSHMessage.parse(payload)
        let inInitialStrictKex = strictKex && !initialKexDone
        switch message {
        case .disconnect(let reason, let description):
            isClosed = true
            delegate?.transportPeerDisconnected(reason: reason, description: description)
            return
        case .ignore, .debug, .unimplemented:
            if inInitialStrictKex {
                throw SSHProtocolError(
                    "SSH_STRICT_KEX_VIOLATION",
                    "\(SSHMessage.name(of: payload.getInteger(at: payload.readerIndex) ?? 0)) during the initial strict key exchange")
            }
            return
        case .kexInit(let peerInit):
            try receivedKexInit(peerInit, payload: payload, sequenceNumber: sequenceNumber)
        case .newKeys:
            try receivedNewKeys()
        case .kexMessage:
            try receivedKexMessage(payload)
        default:
            let number: UInt8 = payload.getInteger(at: payload.readerIndex) ?? 0
            guard initialKexDone else {
                throw SSHProtocolError(
                    inInitialStrictKex ? "SSH_STRICT_KEX_VIOLATION" : "SSH_UNEXPECTED_MESSAGE",
                    "\(SSHMessage.name(of: number)) before the initial key exchange completed")
            }
            switch phase {
            case .exchanging, .awaitingPeerNewKeys:
                // RFC 4253 §7.1: after its KEXINIT the peer may send only transport messages until its NEWKEYS.
                throw SSHProtocolError(
                    "SSH_UNEXPECTED_MESSAGE",
                    "\(SSHMessage.name(of: number)) in the middle of a key exchange")
            case .idle, .sentKexInit:
                try delegate?.transportReceived(message, sequenceNumber: sequenceNumber)
            }
        }
    }

    private func receivedKexInit(_ peerInit: SSHKexInit, payload: ByteBuffer, sequenceNumber: UInt32) throws {
        switch phase {
        case .idle, .sentKexInit: break
        case .exchanging, .awaitingPeerNewKeys:
            throw SSHProtocolError("SSH_UNEXPECTED_KEXINIT", "KEXINIT while a key exchange is already running")
        }
        if !sawFirstPeerKexInit {
            sawFirstPeerKexInit = true
            switch role {
            case .server:
                strictKex = peerInit.kexAlgorithms.contains(SSHKexMarker.strictClient)
                peerWantsExtInfo = peerInit.kexAlgorithms.contains(SSHKexMarker.extInfoClient)
            case .client:
                strictKex = peerInit.kexAlgorithms.contains(SSHKexMarker.strictServer)
            }
            if strictKex && sequenceNumber != 0 {
                throw SSHProtocolError(
                    "SSH_STRICT_KEX_VIOLATION",
                    "strict key exchange requires KEXINIT as the first packet, got it as packet \(sequenceNumber)")
            }
        }
        if case .idle = phase { try sendKexInit() }
        guard let ourInit = ourKexInit else { throw SSHProtocolError("SSH_INTERNAL", "no KEXINIT of ours") }
        peerKexInitPayload = Array(payload.readableBytesView)
        if role == .client {
            try startClientKex(peerInit: peerInit, ourInit: ourInit)
            return
        }
        let negotiated = try SSHNegotiation.negotiate(client: peerInit, server: ourInit, isAEAD: crypto.isAEAD(cipher:))
        if peerInit.firstKexPacketFollows && SSHNegotiation.guessIsWrong(peer: peerInit, ours: ourInit) {
            ignoreNextPacket = true
        }
        guard let hostKey = configuration.hostKeys.first(where: { $0.signatureAlgorithms.contains(negotiated.hostKey) }) else {
            throw SSHProtocolError(
                "SSH_KEX_NO_HOST_KEY", "no host key can sign with \(negotiated.hostKey)",
                disconnectReason: SSHDisconnectReason.keyExchangeFailed)
        }
        let context = SSHKexContext(
            clientVersion: Array((peerVersion ?? "").utf8),
            serverVersion: Array(configuration.ourVersion.utf8),
            clientKexInit: peerKexInitPayload, serverKexInit: ourKexInitPayload,
            hostKey: hostKey, hostKeyAlgorithm: negotiated.hostKey)
        let kex = try crypto.makeServerKex(name: negotiated.kex, context: context)
        phase = .exchanging(.server(kex), negotiated)
    }

    /// Client role: we never guess, so the server's first kex message is always for the
    /// negotiated algorithm; a server that guessed wrong has its packet ignored.
    private func startClientKex(peerInit: SSHKexInit, ourInit: SSHKexInit) throws {
        let negotiated = try SSHNegotiation.negotiate(client: ourInit, server: peerInit, isAEAD: crypto.isAEAD(cipher:))
        if peerInit.firstKexPacketFollows && SSHNegotiation.guessIsWrong(peer: peerInit, ours: ourInit) {
            ignoreNextPacket = true
        }
        let context = SSHClientKexContext(
            clientVersion: Array(configuration.ourVersion.utf8), serverVersion: Array((peerVersion ?? "").utf8),
            clientKexInit: ourKexInitPayload, serverKexInit: peerKexInitPayload)
        var kex = try crypto.makeClientKex(name: negotiated.kex, context: context)
        for message in try kex.start() { try seal(message) }
        phase = .exchanging(.client(kex), negotiated)
    }

    /// Client role: the server must prove K_S signed H with the negotiated algorithm before
    /// anything is derived from H; then the owner decides whether it trusts that key.
    private func verifyServer(_ result: SSHClientKexOutput, algorithm: String) throws {
        let key: SSHPublicKey
        do { key = try SSHPublicKey(blob: result.hostKeyBlob) } catch {
            throw SSHProtocolError(
                "SSH_KEX_BAD_HOST_KEY", "the server's host key does not parse: \(error)",
                disconnectReason: SSHDisconnectReason.keyExchangeFailed)
        }
        var signature = ByteBuffer(bytes: result.signature)
        guard key.signatureAlgorithms.contains(algorithm), signature.readSSHText() == algorithm,
            key.verify(signatureBlob: result.signature, over: result.output.exchangeHash)
        else {
            throw SSHProtocolError(
                "SSH_KEX_BAD_SIGNATURE", "the server's \(algorithm) signature over the exchange hash does not verify with its host key \(key.fingerprintSHA256)",
                disconnectReason: SSHDisconnectReason.hostKeyNotVerifiable)
        }
        do {
            try delegate?.transportVerifyHostKey(key, algorithm: algorithm)
        } catch let error as SSHProtocolError {
            throw error
        } catch {
            throw SSHProtocolError(
                "SSH_HOST_KEY_REJECTED", "\(error)", disconnectReason: SSHDisconnectReason.hostKeyNotVerifiable)
        }
    }

    private func receivedKexMessage(_ payload: ByteBuffer) throws {
        guard case .exchanging(let driver, let negotiated) = phase else {
            throw SSHProtocolError(
                "SSH_UNEXPECTED_KEX_MESSAGE",
                "key exchange message \(payload.getInteger(at: payload.readerIndex, as: UInt8.self) ?? 0) outside a key exchange")
        }
        let done: SSHKexOutput
        switch driver {
        case .server(var kex):
            let (replies, output) = try kex.receive(payload)
            phase = .exchanging(.server(kex), negotiated)
            for reply in replies { try seal(reply) }
            guard let output else { return }
            done = output
        case .client(var kex):
            let (replies, output) = try kex.receive(payload)
            phase = .exchanging(.client(kex), negotiated)
            for reply in replies { try seal(reply) }
            guard let output else { return }
            try verifyServer(output, algorithm: negotiated.hostKey)
            done = output.output
        }

        let initial = sessionID == nil
        if initial { sessionID = done.exchangeHash }
        let keys = try makeKeys(done, negotiated)
        try seal(SSHMessageWriter.newKeys())
        sealer = keys.sealer
        if strictKex { outboundSequence = 0 }
        phase = .awaitingPeerNewKeys(keys.opener)
        if initial && peerWantsExtInfo && role == .server {
            try seal(SSHMessageWriter.extInfo([("server-sig-algs", configuration.serverSignatureAlgorithms.joined(separator: ","))]))
        }
        while let message = held.popFirst() { try seal(message) }
        delegate?.transportOutboundResumed()
    }

    private func receivedNewKeys() throws {
        guard case .awaitingPeerNewKeys(let newOpener) = phase else {
            throw SSHProtocolError("SSH_UNEXPECTED_NEWKEYS", "NEWKEYS before the key exchange produced keys")
        }
        opener = newOpener
        if strictKex { inboundSequence = 0 }
        phase = .idle
        bytesSinceKex = 0
        packetsSinceKex = 0
        keyExchangeCount += 1
        let initial = !initialKexDone
        initialKexDone = true
        delegate?.transportKeyExchangeCompleted(initial: initial)
    }

    /// RFC 4253 §7.2: the client-to-server direction uses A/C/E, the other B/D/F.
    private func makeKeys(_ done: SSHKexOutput, _ negotiated: SSHNegotiatedAlgorithms) throws
        -> (sealer: any SSHPacketSealer, opener: any SSHPacketOpener)
    {
        guard let sessionID else { throw SSHProtocolError("SSH_INTERNAL", "no session id") }
        func derive(_ letter: Character, _ length: Int) -> [UInt8] {
            SSHKeyDerivation.derive(
                hash: done.hash, sharedSecret: done.sharedSecret, exchangeHash: done.exchangeHash,
                sessionID: sessionID, letter: letter.asciiValue!, length: length)
        }
        let isServer = role == .server
        let inCipher = isServer ? negotiated.cipherClientToServer : negotiated.cipherServerToClient
        let outCipher = isServer ? negotiated.cipherServerToClient : negotiated.cipherClientToServer
        let inMAC = isServer ? negotiated.macClientToServer : negotiated.macServerToClient
        let outMAC = isServer ? negotiated.macServerToClient : negotiated.macClientToServer
        let (inIV, inKey, inMACKey): (Character, Character, Character) = isServer ? ("A", "C", "E") : ("B", "D", "F")
        let (outIV, outKey, outMACKey): (Character, Character, Character) = isServer ? ("B", "D", "F") : ("A", "C", "E")
        let opener = try crypto.makeOpener(
            cipher: inCipher, mac: inMAC,
            key: derive(inKey, crypto.keyLength(cipher: inCipher)),
            iv: derive(inIV, crypto.ivLength(cipher: inCipher)),
            macKey: inMAC.map { derive(inMACKey, crypto.keyLength(mac: $0)) } ?? [])
        let sealer = try crypto.makeSealer(
            cipher: outCipher, mac: outMAC,
            key: derive(outKey, crypto.keyLength(cipher: outCipher)),
            iv: derive(outIV, crypto.ivLength(cipher: outCipher)),
            macKey: outMAC.map { derive(outMACKey, crypto.keyLength(mac: $0)) } ?? [])
        return (sealer, opener)
    }
}
