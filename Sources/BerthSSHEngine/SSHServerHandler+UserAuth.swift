import BerthSSHKeys
import BerthSSHWire
import NIOCore

// RFC 4252 user authentication, server side. Requests are served one at a time in arrival order:
// a client may pipeline several (OpenSSH sends a publickey query and a password right after
// another), and each answer must match its request.
extension SSHServerHandler {
    func receivedUserAuthRequest(_ request: SSHUserAuthRequestMessage) throws {
        // RFC 4252 §5.1: requests after SUCCESS are ignored.
        guard !isAuthenticated else { return }
        guard userauthServiceAccepted else {
            throw SSHProtocolError("SSH_USERAUTH_WITHOUT_SERVICE", "USERAUTH_REQUEST before the ssh-userauth service was accepted")
        }
        authRequestCount += 1
        // RFC 4256 §3.4: a new request abandons a keyboard-interactive exchange.
        abortInfoRequest("the client sent another authentication request")
        if authRequestCount > settings.maxAuthRequests {
            throw SSHProtocolError(
                "SSH_AUTH_TOO_MANY_ATTEMPTS", "too many authentication attempts",
                disconnectReason: SSHDisconnectReason.noMoreAuthMethodsAvailable)
        }
        authQueue.append(request)
        try processAuthQueue()
    }

    /// Works through queued requests until one needs the delegate's answer.
    func processAuthQueue() throws {
        while !authInFlight, !isAuthenticated, let request = authQueue.popFirst() {
            guard request.service == "ssh-connection" else {
                throw SSHProtocolError(
                    "SSH_SERVICE_NOT_AVAILABLE", "authentication for unknown service \"\(request.service)\"",
                    disconnectReason: SSHDisconnectReason.serviceNotAvailable)
            }
            switch request.method {
            case .none:
                ask(SSHAuthRequest(username: request.username, method: .none))
            case .password(let password, let newPassword):
                // Password change (RFC 4252 §8) is not offered.
                if newPassword != nil {
                    sendAuthFailure(partialSuccess: false)
                } else {
                    ask(SSHAuthRequest(username: request.username, method: .password(password)))
                }
            case .publicKey(let algorithm, let blob, let signature):
                guard let key = acceptableKey(algorithm: algorithm, blob: blob) else {
                    sendAuthFailure(partialSuccess: false)
                    continue
                }
                guard let signature else {
                    // A query: whether this key would do. Berth decides on the signed attempt.
                    sendAuthReply(SSHMessageWriter.userauthPKOK(algorithm: algorithm, blob: blob))
                    continue
                }
                if let method = verified(signature: signature, key: key, algorithm: algorithm, blob: blob, request: request) {
                    ask(SSHAuthRequest(username: request.username, method: method))
                } else {
                    sendAuthFailure(partialSuccess: false)
                }
            case .keyboardInteractive(_, let submethods):
                guard let conversation = conversation() else {
                    sendAuthFailure(partialSuccess: false)
                    continue
                }
                ask(SSHAuthRequest(username: request.username, method: .keyboardInteractive(submethods: submethods, conversation: conversation)))
            case .other:
                sendAuthFailure(partialSuccess: false)
            }
        }
    }

    /// The key that must have signed, the certificate around it (if any), and the algorithm
    /// inside the signature: a certificate algorithm signs with its plain one (PROTOCOL.certkeys).
    struct OfferedKey {
        let signer: SSHPublicKey
        let certificate: SSHCertificate?
        let securityKey: SSHSecurityKey?
        let signatureAlgorithm: String
    }

    private func acceptableKey(algorithm: String, blob: [UInt8]) -> OfferedKey? {
        guard settings.userAuthKeyAlgorithms.contains(algorithm) else { return nil }
        if let inner = SSHCertificate.signatureAlgorithms[algorithm] {
            // Whether the CA is trusted and the certificate valid is the auth layer's decision.
            guard let certificate = try? SSHCertificate(blob: blob), certificate.publicKey.signatureAlgorithms.contains(inner) else { return nil }
            return OfferedKey(signer: certificate.publicKey, certificate: certificate, securityKey: nil, signatureAlgorithm: inner)
        }
        if SSHSecurityKey.keyTypes.contains(algorithm) {
            // Applications other than ssh:… belong to web sign-in, not to SSH (as ssh-keygen).
            guard let securityKey = try? SSHSecurityKey(blob: blob), securityKey.keyType == algorithm, securityKey.application.hasPrefix("ssh:") else { return nil }
            return OfferedKey(signer: securityKey.key, certificate: nil, securityKey: securityKey, signatureAlgorithm: algorithm)
        }
        guard let key = try? SSHPublicKey(blob: blob), key.signatureAlgorithms.contains(algorithm) else { return nil }
        return OfferedKey(signer: key, certificate: nil, securityKey: nil, signatureAlgorithm: algorithm)
    }

    /// RFC 4252 §7: the signature covers the session id and the request itself, and must be made
    /// with the algorithm the request names.
    private func verified(signature: [UInt8], key: OfferedKey, algorithm: String, blob: [UInt8], request: SSHUserAuthRequestMessage) -> SSHAuthMethodRequest? {
        guard let sessionID = transport.sessionID else { return nil }
        var signatureBuffer = ByteBuffer(bytes: signature)
        guard signatureBuffer.readSSHText() == key.signatureAlgorithm else { return nil }
        var signed = ByteBuffer()
        signed.writeSSHString(sessionID)
        signed.writeSSHUInt8(SSHMessageNumber.userauthRequest)
        signed.writeSSHText(request.username)
        signed.writeSSHText(request.service)
        signed.writeSSHText("publickey")
        signed.writeSSHBool(true)
        signed.writeSSHText(algorithm)
        signed.writeSSHString(blob)
        let data = Array(signed.readableBytesView)
        if let securityKey = key.securityKey {
            return securityKey.verify(signatureBlob: signature, over: data).map { .securityKey(securityKey, $0) }
        }
        guard key.signer.verify(signatureBlob: signature, over: data) else { return nil }
        return key.certificate.map { .certificate($0) } ?? .publicKey(key.signer)
    }

    /// The delegate's handle for INFO_REQUEST rounds; usable from any thread.
    private func conversation() -> SSHKeyboardInteractiveConversation? {
        guard let context else { return nil }
        let loop = context.eventLoop
        let handler = NIOLoopBound(self, eventLoop: loop)
        return SSHKeyboardInteractiveConversation { name, instruction, prompts in
            loop.flatSubmit { handler.value.sendInfoRequest(name: name, instruction: instruction, prompts: prompts, loop: loop) }
        }
    }

    private func sendInfoRequest(name: String, instruction: String, prompts: [SSHKeyboardInteractivePrompt], loop: any EventLoop) -> EventLoopFuture<[String]> {
        guard authInFlight, !closing, !isAuthenticated, pendingInfo == nil else {
            return loop.makeFailedFuture(SSHKeyboardInteractiveAborted(reason: "no keyboard-interactive request is waiting"))
        }
        let promise = loop.makePromise(of: [String].self)
        pendingInfo = (promise, prompts.count)
        sendAuthReply(SSHMessageWriter.userauthInfoRequest(name: name, instruction: instruction, prompts: prompts))
        outputReady()
        return promise.futureResult
    }

    func receivedInfoResponse(_ responses: [String]) throws {
        guard let pending = pendingInfo else {
            // After success OpenSSH may still be answering; before, it is a protocol error.
            guard isAuthenticated else {
                throw SSHProtocolError("SSH_UNEXPECTED_MESSAGE", "USERAUTH_INFO_RESPONSE without an INFO_REQUEST")
            }
            return
        }
        pendingInfo = nil
        if responses.count == pending.count {
            pending.promise.succeed(responses)
        } else {
            pending.promise.fail(SSHKeyboardInteractiveAborted(reason: "\(responses.count) answers to \(pending.count) prompts"))
        }
    }

    func abortInfoRequest(_ reason: String) {
        guard let pending = pendingInfo else { return }
        pendingInfo = nil
        pending.promise.fail(SSHKeyboardInteractiveAborted(reason: reason))
    }

    private func ask(_ request: SSHAuthRequest) {
        guard let delegate, let context else {
            sendAuthFailure(partialSuccess: false)
            return
        }
        authInFlight = true
        let promise = context.eventLoop.makePromise(of: SSHAuthResult.self)
        promise.futureResult.assumeIsolated().whenComplete { result in
            self.authInFlight = false
            self.abortInfoRequest("the authentication request was answered")
            guard !self.closing else { return }
            switch result {
            case .success(.success):
                self.sendAuthReply(SSHMessageWriter.userauthSuccess())
                self.isAuthenticated = true
                self.authenticatedUsername = request.username
                self.authQueue.removeAll()
            case .success(.failure(let partialSuccess)):
                self.sendAuthFailure(partialSuccess: partialSuccess)
            case .failure:
                self.sendAuthFailure(partialSuccess: false)
            }
            do {
                try self.processAuthQueue()
            } catch {
                self.fail(error)
            }
            self.outputReady()
        }
        delegate.sshAuthenticate(request, promise: promise)
    }

    private func sendAuthFailure(partialSuccess: Bool) {
        let methods = delegate?.sshAuthMethods ?? []
        sendAuthReply(SSHMessageWriter.userauthFailure(methods: methods, partialSuccess: partialSuccess))
    }

    /// The banner goes once, right before the first reply (RFC 4252 §5.4).
    private func sendAuthReply(_ payload: ByteBuffer) {
        if !bannerSent {
            bannerSent = true
            if let banner = settings.banner { send(SSHMessageWriter.userauthBanner(banner)) }
        }
        send(payload)
    }
}
