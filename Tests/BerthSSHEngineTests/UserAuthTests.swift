import BerthSSHKeys
import BerthSSHWire
import NIOCore
import XCTest

@testable import BerthSSHEngine

final class UserAuthTests: XCTestCase {
    private func connected(
        _ configure: (inout SSHServerSettings) -> Void = { _ in },
        delegate: RecordingServerDelegate = RecordingServerDelegate()
    ) throws -> TestConnection {
        var settings = try TestConnection.defaultSettings()
        configure(&settings)
        let connection = try TestConnection(settings: settings, delegate: delegate)
        try connection.handshake()
        try connection.drain()
        connection.received.removeAll()
        return connection
    }

    private func requestService(_ connection: TestConnection, _ name: String = "ssh-userauth") throws {
        try connection.send {
            $0.writeSSHUInt8(SSHMessageNumber.serviceRequest); $0.writeSSHText(name)
        }
    }

    private func sendAuth(
        _ connection: TestConnection, user: String = "alice", service: String = "ssh-connection",
        method: String, _ body: (inout ByteBuffer) -> Void = { _ in }
    ) throws {
        try connection.send { b in
            b.writeSSHUInt8(SSHMessageNumber.userauthRequest)
            b.writeSSHText(user)
            b.writeSSHText(service)
            b.writeSSHText(method)
            body(&b)
        }
    }

    private func failure(_ payload: ByteBuffer) -> (methods: [String], partial: Bool)? {
        var b = payload
        guard b.readSSHUInt8() == SSHMessageNumber.userauthFailure, let methods = b.readSSHNameList(), let partial = b.readSSHBool() else { return nil }
        return (methods, partial)
    }

    private func closeCode(_ connection: TestConnection) -> String? {
        (connection.delegate.closedError.first as? SSHProtocolError)?.code
    }

    func testServiceRequestAnsweredEachTimeAndUnknownServiceRefused() throws {
        let connection = try connected()
        try requestService(connection)
        try requestService(connection)
        XCTAssertEqual(try connection.drainNumbers(), [6, 6])
        try requestService(connection, "ssh-connection")
        try connection.drain()
        XCTAssertEqual(connection.disconnectMessage()?.reason, SSHDisconnectReason.serviceNotAvailable)
        XCTAssertEqual(closeCode(connection), "SSH_SERVICE_NOT_AVAILABLE")
    }

    func testAuthBeforeServiceIsAProtocolError() throws {
        let connection = try connected()
        try connection.sendPassword("secret")
        XCTAssertEqual(closeCode(connection), "SSH_USERAUTH_WITHOUT_SERVICE")
    }

    func testBannerOnceBeforeFirstReplyThenFailureThenSuccess() throws {
        let connection = try connected { $0.banner = "Welcome\r\n" }
        try requestService(connection)
        try sendAuth(connection, method: "none")
        try connection.sendPassword("wrong")
        try connection.sendPassword("secret")
        let replies = try connection.drain()
        XCTAssertEqual(replies.map { $0.messageNumber! }, [6, 53, 51, 51, 52])
        XCTAssertEqual(failure(replies[2])?.methods, ["publickey", "password"])
        XCTAssertEqual(failure(replies[2])?.partial, false)
        XCTAssertEqual(connection.delegate.authRequests.count, 3)
        guard case .none = connection.delegate.authRequests[0].method else { return XCTFail() }
        XCTAssertTrue(connection.handler.isAuthenticated)
        XCTAssertEqual(connection.handler.authenticatedUsername, "alice")
    }

    func testPipelinedRequestsAreServedOneAtATimeInOrder() throws {
        let delegate = RecordingServerDelegate()
        delegate.authAnswer = nil
        let connection = try connected(delegate: delegate)
        try requestService(connection)
        try connection.sendPassword("one")
        try connection.sendPassword("two")
        try connection.sendPassword("three")
        try connection.drain()
        XCTAssertEqual(delegate.authRequests.count, 1, "the next request waits for the answer to the first")
        delegate.pendingAuth.removeFirst().succeed(.failure(partialSuccess: true))
        try connection.drain()
        XCTAssertEqual(delegate.authRequests.count, 2)
        delegate.pendingAuth.removeFirst().succeed(.success)
        try connection.drain()
        let replies = connection.received
        XCTAssertEqual(replies.map { $0.messageNumber! }, [6, 51, 52])
        XCTAssertEqual(failure(replies[1])?.partial, true)
        XCTAssertEqual(delegate.authRequests.count, 2, "requests after SUCCESS are dropped")
        try connection.sendPassword("four")
        XCTAssertEqual(try connection.drainNumbers(), [], "and so are later ones")
        XCTAssertTrue(connection.isActive)
    }

    func testTooManyRequestsDisconnects() throws {
        let connection = try connected { $0.maxAuthRequests = 3 }
        try requestService(connection)
        for _ in 0..<4 { try connection.sendPassword("wrong") }
        try connection.drain()
        XCTAssertEqual(connection.disconnectMessage()?.reason, SSHDisconnectReason.noMoreAuthMethodsAvailable)
        XCTAssertEqual(connection.disconnectMessage()?.description, "too many authentication attempts")
        XCTAssertEqual(connection.delegate.authRequests.count, 3)
        XCTAssertFalse(connection.isActive)
    }

    func testPasswordChangeAndUnknownMethodFailWithoutDelegate() throws {
        let connection = try connected()
        try requestService(connection)
        try sendAuth(connection, method: "password") { b in
            b.writeSSHBool(true)
            b.writeSSHText("secret")
            b.writeSSHText("new")
        }
        try sendAuth(connection, method: "hostbased") { $0.writeSSHText("whatever") }
        XCTAssertEqual(try connection.drainNumbers(), [6, 51, 51])
        XCTAssertEqual(connection.delegate.authRequests.count, 0)
    }

    func testKeyboardInteractiveGoesToTheDelegate() throws {
        let connection = try connected()
        try requestService(connection)
        try sendAuth(connection, method: "keyboard-interactive") { b in
            b.writeSSHText("")
            b.writeSSHText("pam")
        }
        XCTAssertEqual(try connection.drainNumbers(), [6, 51])
        guard case .keyboardInteractive(let submethods, _) = connection.delegate.authRequests.first?.method else { return XCTFail() }
        XCTAssertEqual(submethods, "pam")
    }

    private func result(_ future: EventLoopFuture<[String]>) -> Result<[String], any Error>? {
        var outcome: Result<[String], any Error>?
        future.whenComplete { outcome = $0 }
        return outcome
    }

    private func infoResponse(_ connection: TestConnection, _ answers: [String]) throws {
        try connection.send { b in
            b.writeSSHUInt8(SSHMessageNumber.userauthInfoResponse)
            b.writeSSHUInt32(UInt32(answers.count))
            for answer in answers { b.writeSSHText(answer) }
        }
    }

    /// RFC 4256 §3.2–3.4: INFO_REQUEST as written there, the answers back to the delegate, a
    /// wrong answer count and a new request both end the exchange.
    func testKeyboardInteractiveConversation() throws {
        let delegate = RecordingServerDelegate()
        delegate.authAnswer = nil
        let connection = try connected(delegate: delegate)
        try requestService(connection)
        try sendAuth(connection, method: "keyboard-interactive") {
            $0.writeSSHText(""); $0.writeSSHText("")
        }
        XCTAssertEqual(try connection.drainNumbers(), [6])
        guard case .keyboardInteractive(_, let conversation) = delegate.authRequests.first?.method else { return XCTFail() }

        let first = conversation.send("Berth", "Sign in", [SSHKeyboardInteractivePrompt("Password: ", echo: false), SSHKeyboardInteractivePrompt("Code: ", echo: true)])
        var request = try XCTUnwrap(try connection.drain().first)
        XCTAssertEqual(request.readSSHUInt8(), 60)
        XCTAssertEqual(request.readSSHText(), "Berth")
        XCTAssertEqual(request.readSSHText(), "Sign in")
        XCTAssertEqual(request.readSSHText(), "")
        XCTAssertEqual(request.readSSHUInt32(), 2)
        XCTAssertEqual(request.readSSHText(), "Password: ")
        XCTAssertEqual(request.readSSHBool(), false)
        XCTAssertEqual(request.readSSHText(), "Code: ")
        XCTAssertEqual(request.readSSHBool(), true)
        XCTAssertEqual(request.readableBytes, 0)
        XCTAssertNil(result(first))
        try infoResponse(connection, ["secret", "123456"])
        XCTAssertEqual(try result(first)?.get(), ["secret", "123456"])

        let miscounted = conversation.send("", "", [SSHKeyboardInteractivePrompt("Password: ", echo: false)])
        _ = try connection.drain()
        try infoResponse(connection, ["a", "b"])
        XCTAssertThrowsError(try XCTUnwrap(result(miscounted)).get()) { XCTAssertTrue($0 is SSHKeyboardInteractiveAborted) }

        let abandoned = conversation.send("", "", [SSHKeyboardInteractivePrompt("Password: ", echo: false)])
        _ = try connection.drain()
        try connection.sendPassword("secret")
        XCTAssertThrowsError(try XCTUnwrap(result(abandoned)).get()) { XCTAssertTrue($0 is SSHKeyboardInteractiveAborted) }
        // The keyboard-interactive request is answered first, then the password request is asked.
        delegate.pendingAuth[0].succeed(.failure(partialSuccess: false))
        XCTAssertEqual(try connection.drainNumbers(), [51])
        XCTAssertEqual(delegate.authRequests.count, 2)
        delegate.pendingAuth[1].succeed(.success)
        XCTAssertEqual(try connection.drainNumbers(), [52])
        // After the answer, the conversation can ask nothing more.
        let late = conversation.send("", "", [])
        XCTAssertEqual(try connection.drain().count, 0)
        XCTAssertThrowsError(try XCTUnwrap(result(late)).get()) { XCTAssertTrue($0 is SSHKeyboardInteractiveAborted) }
    }

    func testWrongServiceNameInRequestDisconnects() throws {
        let connection = try connected()
        try requestService(connection)
        try sendAuth(connection, service: "ssh-evil", method: "none")
        XCTAssertEqual(closeCode(connection), "SSH_SERVICE_NOT_AVAILABLE")
    }

    // MARK: publickey

    private func sendPublicKey(
        _ connection: TestConnection, key: SSHPrivateKey, algorithm: String, sign: Bool,
        corrupt: Bool = false, user: String = "alice"
    ) throws {
        var signature: [UInt8]?
        if sign {
            var signed = ByteBuffer()
            signed.writeSSHString(connection.sessionID!)
            signed.writeSSHUInt8(SSHMessageNumber.userauthRequest)
            signed.writeSSHText(user)
            signed.writeSSHText("ssh-connection")
            signed.writeSSHText("publickey")
            signed.writeSSHBool(true)
            signed.writeSSHText(algorithm)
            signed.writeSSHString(key.publicKey.blob)
            var data = Array(signed.readableBytesView)
            if corrupt { data[data.count - 1] ^= 1 }
            signature = try key.sign(data, algorithm: algorithm)
        }
        try sendAuth(connection, user: user, method: "publickey") { b in
            b.writeSSHBool(signature != nil)
            b.writeSSHText(algorithm)
            b.writeSSHString(key.publicKey.blob)
            if let signature { b.writeSSHString(signature) }
        }
    }

    func testPublicKeyQueryIsAnsweredWithoutTheDelegate() throws {
        let key = try SSHPrivateKey.generate(.ed25519)
        let connection = try connected()
        try requestService(connection)
        try sendPublicKey(connection, key: key, algorithm: "ssh-ed25519", sign: false)
        let replies = try connection.drain()
        XCTAssertEqual(replies.map { $0.messageNumber! }, [6, 60])
        var pkOK = replies[1]
        pkOK.moveReaderIndex(forwardBy: 1)
        XCTAssertEqual(pkOK.readSSHText(), "ssh-ed25519")
        XCTAssertEqual(pkOK.readSSHStringBytes(), key.publicKey.blob)
        XCTAssertEqual(connection.delegate.authRequests.count, 0)
    }

    func testPublicKeyAlgorithmMustBeAcceptedAndMatchTheKey() throws {
        let rsa = try SSHPrivateKey.generate(.rsa(bits: 2048))
        let ed = try SSHPrivateKey.generate(.ed25519)
        let connection = try connected()
        try requestService(connection)
        try sendPublicKey(connection, key: rsa, algorithm: "ssh-rsa", sign: false)  // SHA-1 not allowed by default
        try sendPublicKey(connection, key: ed, algorithm: "rsa-sha2-256", sign: false)  // wrong algorithm for the key
        try sendPublicKey(connection, key: rsa, algorithm: "rsa-sha2-256", sign: false)
        XCTAssertEqual(try connection.drainNumbers(), [6, 51, 51, 60])
    }

    func testSignedPublicKeyIsVerifiedThenAsked() throws {
        for kind in [SSHKeyKind.ed25519, .ecdsaP256, .rsa(bits: 2048)] {
            let key = try SSHPrivateKey.generate(kind)
            let connection = try connected()
            try requestService(connection)
            try sendPublicKey(connection, key: key, algorithm: key.signatureAlgorithms[0], sign: true, corrupt: true)
            XCTAssertEqual(try connection.drainNumbers(), [6, 51], "a bad signature fails without asking")
            XCTAssertEqual(connection.delegate.authRequests.count, 0)
            try sendPublicKey(connection, key: key, algorithm: key.signatureAlgorithms[0], sign: true)
            XCTAssertEqual(try connection.drainNumbers(), [51], "the delegate refuses non-password logins")
            guard case .publicKey(let asked)? = connection.delegate.authRequests.first?.method else { return XCTFail() }
            XCTAssertEqual(asked, key.publicKey)
        }
    }

    func testSignatureWithAnotherAlgorithmThanNamedFails() throws {
        let key = try SSHPrivateKey.generate(.rsa(bits: 2048))
        let connection = try connected()
        try requestService(connection)
        // Signed as rsa-sha2-256 but the request names rsa-sha2-512.
        var signed = ByteBuffer()
        signed.writeSSHString(connection.sessionID!)
        signed.writeSSHUInt8(SSHMessageNumber.userauthRequest)
        signed.writeSSHText("alice")
        signed.writeSSHText("ssh-connection")
        signed.writeSSHText("publickey")
        signed.writeSSHBool(true)
        signed.writeSSHText("rsa-sha2-512")
        signed.writeSSHString(key.publicKey.blob)
        let signature = try key.sign(Array(signed.readableBytesView), algorithm: "rsa-sha2-256")
        try sendAuth(connection, method: "publickey") { b in
            b.writeSSHBool(true)
            b.writeSSHText("rsa-sha2-512")
            b.writeSSHString(key.publicKey.blob)
            b.writeSSHString(signature)
        }
        XCTAssertEqual(try connection.drainNumbers(), [6, 51])
        XCTAssertEqual(connection.delegate.authRequests.count, 0)
    }

    func testConnectionMessagesBeforeAuthAreRefused() throws {
        let connection = try connected()
        try requestService(connection)
        try connection.send { b in
            b.writeSSHUInt8(SSHMessageNumber.channelOpen)
            b.writeSSHText("session")
            b.writeSSHUInt32(0)
            b.writeSSHUInt32(1000)
            b.writeSSHUInt32(1000)
        }
        XCTAssertEqual(closeCode(connection), "SSH_NOT_AUTHENTICATED")
    }
}
