import BerthSSHKeys
import BerthSSHWire
import NIOCore

/// RFC 4252 user authentication as the client: each configured method once, in order (the key,
/// then the password), skipping what the server's USERAUTH_FAILURE does not list.
struct SSHClientAuthState {
    enum Method: Equatable {
        case publicKey
        case password
    }

    let username: String
    let password: String?
    let privateKey: SSHPrivateKey?
    var remaining: [Method]
    var inFlight: Method?
    var serverSignatureAlgorithms: [String]?
    var serviceRequested = false

    init(settings: SSHClientSettings) {
        username = settings.username
        password = settings.password
        privateKey = settings.privateKey
        var methods: [Method] = []
        if settings.privateKey != nil { methods.append(.publicKey) }
        if settings.password != nil { methods.append(.password) }
        remaining = methods
    }

    /// The signature algorithm for our key: the first the key can make that the server's
    /// `server-sig-algs` lists. Without the list, the SHA-2 RSA algorithms are still tried
    /// (every OpenSSH since 7.2 takes them). Never "ssh-rsa": SHA-1 signatures are forgeable
    /// by chosen-prefix collisions, and OpenSSH itself no longer accepts them by default.
    func signatureAlgorithm(for key: SSHPrivateKey) -> String? {
        let candidates = key.signatureAlgorithms.filter { $0 != "ssh-rsa" }
        if let accepted = serverSignatureAlgorithms {
            return candidates.first { accepted.contains($0) }
        }
        return candidates.first
    }
}

extension SSHConnectionEngine {
    func clientStartAuthentication() {
        guard var state = clientState, !state.serviceRequested else { return }
        state.serviceRequested = true
        clientState = state
        var request = ByteBuffer()
        request.writeSSHUInt8(SSHMessageNumber.serviceRequest)
        request.writeSSHText("ssh-userauth")
        send(request)
        outputReady()
    }

    func clientReceived(_ message: SSHMessage, sequenceNumber: UInt32) throws {
        switch message {
        case .extInfo(let extensions):
            if var value = extensions["server-sig-algs"], let text = value.readString(length: value.readableBytes) {
                clientState?.serverSignatureAlgorithms = text.split(separator: ",").map(String.init)
            }
        case .serviceAccept(let service):
            guard service == "ssh-userauth", clientState?.serviceRequested == true, !isAuthenticated else {
                throw SSHProtocolError("SSH_UNEXPECTED_MESSAGE", "SERVICE_ACCEPT for \"\(service)\", which was not requested")
            }
            try clientTryNextMethod(allowed: nil)
        case .userauthReply(let number, var body):
            guard !isAuthenticated else { return }
            switch number {
            case SSHMessageNumber.userauthSuccess:
                guard clientState?.inFlight != nil else {
                    throw SSHProtocolError("SSH_UNEXPECTED_MESSAGE", "USERAUTH_SUCCESS without an authentication request")
                }
                clientState?.inFlight = nil
                isAuthenticated = true
                authenticatedUsername = clientState?.username
                clientDelegate?.sshAuthenticated()
                outputReady()
            case SSHMessageNumber.userauthFailure:
                guard let allowed = body.readSSHNameList(), body.readSSHBool() != nil else {
                    throw SSHMessage.malformed(number, "method list or partial-success flag")
                }
                try clientTryNextMethod(allowed: allowed)
            case SSHMessageNumber.userauthPKOK where clientState?.inFlight == .password:
                // SSH_MSG_USERAUTH_PASSWD_CHANGEREQ: the password is expired; Berth changes none.
                try clientTryNextMethod(allowed: nil)
            default:
                // A banner, or a PK_OK we did not ask for (the key is sent signed at once).
                break
            }
        case .unknown(let number):
            if (50...79).contains(number) && isAuthenticated { break }
            try transport.sendUnimplemented(sequenceNumber: sequenceNumber)
        case .serviceRequest, .userauthRequest, .userauthInfoResponse:
            throw SSHProtocolError("SSH_UNEXPECTED_MESSAGE", "a server sent a client's message (\(message))")
        default:
            guard isAuthenticated else {
                throw SSHProtocolError("SSH_NOT_AUTHENTICATED", "connection protocol message before user authentication")
            }
            try receivedConnectionMessage(message)
        }
    }

    /// Sends the next configured method the server allows (`allowed` nil: not yet known), or
    /// ends the connection when none is left.
    private func clientTryNextMethod(allowed: [String]?) throws {
        guard var state = clientState, let sessionID = transport.sessionID else { return }
        state.inFlight = nil
        defer { clientState = state }
        while !state.remaining.isEmpty {
            let method = state.remaining.removeFirst()
            switch method {
            case .publicKey:
                guard allowed?.contains("publickey") ?? true, let key = state.privateKey,
                    let algorithm = state.signatureAlgorithm(for: key)
                else { continue }
                state.inFlight = .publicKey
                send(try Self.publicKeyRequest(username: state.username, key: key, algorithm: algorithm, sessionID: sessionID))
                outputReady()
                return
            case .password:
                guard allowed?.contains("password") ?? true, let password = state.password else { continue }
                state.inFlight = .password
                var request = Self.userauthRequestHeader(username: state.username, method: "password")
                request.writeSSHBool(false)
                request.writeSSHText(password)
                send(request)
                outputReady()
                return
            }
        }
        throw SSHProtocolError(
            "SSH_CLIENT_AUTH_REJECTED",
            "the server rejected the configured credentials for \(state.username) (it allows: \(allowed?.joined(separator: ", ") ?? "unknown"))",
            disconnectReason: SSHDisconnectReason.noMoreAuthMethodsAvailable)
    }

    private static func userauthRequestHeader(username: String, method: String) -> ByteBuffer {
        var request = ByteBuffer()
        request.writeSSHUInt8(SSHMessageNumber.userauthRequest)
        request.writeSSHText(username)
        request.writeSSHText("ssh-connection")
        request.writeSSHText(method)
        return request
    }

    /// RFC 4252 §7: signed at once (no query first), over the session id and the request.
    static func publicKeyRequest(username: String, key: SSHPrivateKey, algorithm: String, sessionID: [UInt8]) throws -> ByteBuffer {
        var request = userauthRequestHeader(username: username, method: "publickey")
        request.writeSSHBool(true)
        request.writeSSHText(algorithm)
        request.writeSSHString(key.publicKeyBlob)
        var signed = ByteBuffer()
        signed.writeSSHString(sessionID)
        signed.writeBytes(request.readableBytesView)
        let signature = try key.sign(Array(signed.readableBytesView), algorithm: algorithm)
        request.writeSSHString(signature)
        return request
    }
}
