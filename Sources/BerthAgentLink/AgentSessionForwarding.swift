import BerthAgentProtocol
import BerthCore
import BerthForwardProtocol
import BerthForwarding
import Logging
import NIOCore

// A session's X11 and agent forwarding (docs/configuration.md, "X11 and agent forwarding"): a
// listener of the agent's forward-server in the container, each accepted connection an `x11` or
// `auth-agent@openssh.com` channel to the client, and the variable that points the session's
// program at it. Both end with the session.
extension AgentSession {
    public func onX11Request(requestID: UInt64, _ request: X11Request, opener: any ClientChannelOpener) async throws {
        let (forwarding, link) = try forwardingLink("X11 forwarding")
        guard x11Display == nil else {
            throw RequestRefused("FORWARD_X11_EXISTS", "X11 forwarding is already set up on this session")
        }
        guard let cookie = XAuthorityEntry.cookieBytes(request.cookie), XAuthorityEntry.isProtocolName(request.authProtocol) else {
            throw RequestRefused("FORWARD_X11_BAD_COOKIE", "the X11 authentication protocol or cookie is not valid")
        }
        try await useLoginAccount(link)
        let logger = host.logger
        let x11 = ForwardSetup(
            .x11, bindHost: "localhost", bindPort: 10, protocolName: "tcp", screen: "\(request.screen)",
            singleConnection: request.singleConnection, authProtocol: request.authProtocol, authCookie: request.cookie)
        let (multiplexer, display): (ForwardMultiplexer, UInt64)
        do {
            (multiplexer, display) = try await forwarding.forwards.sessionListener(
                x11, role: "x11", start: { try await link.startForwardServer(role: $0, logger: logger) }
            ) { offer in
                try await opener.openX11(originatorHost: offer.originatorAddress, originatorPort: UInt32(clamping: offer.originatorPort))
            }
        } catch {
            logger.log(.warning, "FORWARD_X11_FAILED", "cannot listen on an X11 display in the container: \(error)")
            throw RequestRefused("FORWARD_X11_FAILED", "cannot set up X11 forwarding in the container")
        }
        sessionForwards.append(multiplexer)
        let displayName = "\(display).\(request.screen)"
        do {
            let entry = XAuthorityEntry(display: "\(display)", protocolName: request.authProtocol, cookie: cookie)
            if let file = try await registerCookie(link, display: displayName, request.authProtocol, request.cookie, entry: entry) {
                setup.setVariable("XAUTHORITY", file)
            }
        } catch {
            await forwarding.forwards.endSession(multiplexer)
            sessionForwards.removeAll { $0 === multiplexer }
            logger.log(.warning, "FORWARD_X11_FAILED", "cannot register the X11 cookie in the container: \(error)")
            throw RequestRefused("FORWARD_X11_FAILED", "cannot set up X11 forwarding in the container")
        }
        x11Display = displayName
        setup.setVariable("DISPLAY", "localhost:\(displayName)")
        logger.log(.info, "FORWARD_X11_READY", "X11 forwarding on display localhost:\(displayName)", [LogKey.channelID: "\(sessionChannel.channelID)"])
    }

    public func onAgentForwardRequest(requestID: UInt64, opener: any ClientChannelOpener) async throws {
        let (forwarding, link) = try forwardingLink("agent forwarding")
        guard agentSocketDirectory == nil else {
            throw RequestRefused("FORWARD_AGENT_EXISTS", "agent forwarding is already set up on this session")
        }
        try await useLoginAccount(link)
        let logger = host.logger
        // A directory of the session's own user, 0700, with a name nobody can guess or take first:
        // only the user's processes reach the socket in it.
        let directory = "/tmp/berth-agent-" + randomHex(12)
        let made = try? await link.runHelper(
            ["/bin/sh", "-c", "umask 077 && mkdir -m 700 \"$1\"", "berth-agent-dir", directory], environment: host.programEnvironment)
        guard made?.status == 0 else {
            logger.log(.warning, "FORWARD_AGENT_FAILED", "cannot create the agent socket's directory \(directory) in the container")
            throw RequestRefused("FORWARD_AGENT_FAILED", "cannot set up agent forwarding in the container")
        }
        let path = directory + "/agent.sock"
        do {
            let (multiplexer, _) = try await forwarding.forwards.sessionListener(
                ForwardSetup(.socketForward, bindHost: path, protocolName: "unix"), role: "agent socket",
                start: { try await link.startForwardServer(role: $0, logger: logger) }
            ) { _ in try await opener.openAgent() }
            sessionForwards.append(multiplexer)
        } catch {
            logger.log(.warning, "FORWARD_AGENT_FAILED", "cannot listen on the agent socket \(path) in the container: \(error)")
            throw RequestRefused("FORWARD_AGENT_FAILED", "cannot set up agent forwarding in the container")
        }
        agentSocketDirectory = directory
        setup.setVariable("SSH_AUTH_SOCK", path)
        logger.log(.info, "FORWARD_AGENT_READY", "agent forwarding on \(path)", [LogKey.channelID: "\(sessionChannel.channelID)"])
    }

    /// Ends the session's listeners and removes the agent socket's directory.
    func endSessionForwards() async {
        let open = sessionForwards
        sessionForwards = []
        guard let forwarding = host as? any AgentForwardingHost else { return }
        for multiplexer in open { await forwarding.forwards.endSession(multiplexer) }
        if let directory = agentSocketDirectory, let link = forwarding.link, link.closedReason == nil {
            agentSocketDirectory = nil
            let environment = host.programEnvironment
            Task { _ = try? await link.runHelper(["/bin/sh", "-c", "rm -rf \"$1\"", "berth-agent-dir", directory], environment: environment) }
        }
    }

    private func forwardingLink(_ what: String) throws -> (any AgentForwardingHost, AgentLink) {
        guard let forwarding = host as? any AgentForwardingHost else {
            throw RequestRefused("FORWARD_NOT_AVAILABLE", "\(what) is not available")
        }
        if let problem = forwarding.forwardingProblem {
            throw RequestRefused("FORWARDING_UNAVAILABLE", "\(what) is not available: \(problem)")
        }
        guard let link = forwarding.link else { throw RequestRefused("FORWARDING_UNAVAILABLE", "the container is not running") }
        return (forwarding, link)
    }

    private func useLoginAccount(_ link: AgentLink) async throws {
        guard let account = host.loginAccount else { return }
        do {
            _ = try await link.useAccount(account)
        } catch {
            throw RequestRefused("AGENT_USER_FAILED", "cannot act as \(account.name) in the container")
        }
    }

    /// With `xauth` in the container, as sshd does: the cookie for `unix:DISPLAY` in the user's
    /// own authority file; returns nil. Without it, a file of the session's own holding only this
    /// entry; returns its path (for XAUTHORITY).
    private func registerCookie(_ link: AgentLink, display: String, _ authProtocol: String, _ cookie: String, entry: XAuthorityEntry) async throws -> String? {
        let script = """
            if command -v xauth >/dev/null 2>&1; then
              xauth -q remove "unix:$1" >/dev/null 2>&1
              exec xauth -q add "unix:$1" "$2" "$3"
            fi
            exit 100
            """
        let environment = host.programEnvironment
        let added = try await link.runHelper(["/bin/sh", "-c", script, "berth-x11", display, authProtocol, cookie], environment: environment)
        if added.status == 0 { return nil }
        guard added.status == 100 else { throw ForwardError.refused("xauth failed (status \(added.status.map(String.init) ?? "signal"))") }
        let write = "umask 077 && d=$(mktemp -d /tmp/berth-x11-XXXXXXXXXX) && printf \"$1\" > \"$d/Xauthority\" && echo \"$d/Xauthority\""
        let written = try await link.runHelper(["/bin/sh", "-c", write, "berth-x11", entry.printfFormat], environment: environment)
        let path = written.output.split(separator: "\n").first.map(String.init) ?? ""
        guard written.status == 0, path.hasPrefix("/tmp/berth-x11-") else { throw ForwardError.refused("cannot write an Xauthority file") }
        return path
    }
}

extension AgentLink {
    /// Runs a short helper program as the link's account and collects its output and status
    /// (nil when a signal ended it).
    func runHelper(_ argv: [String], environment: [String: String]) async throws -> (status: UInt32?, output: String) {
        let process = try await start(argv: argv, environment: environment, terminal: nil)
        process.closeInput()
        var output: [UInt8] = []
        var status: UInt32?
        for await event in process.events {
            switch event {
            case .stdout(let bytes):
                if output.count < 4096 { output += bytes.readableBytesView }
                process.consumed(bytes.readableBytes)
            case .stderr(let bytes):
                process.consumed(bytes.readableBytes)
            case .exit(.status(let code)):
                status = code
            case .exit:
                status = nil
            case .lost(let reason):
                throw ForwardError.refused("the agent went away: \(reason)")
            case .clientGone:
                break
            }
        }
        return (status, String(decoding: output, as: UTF8.self))
    }
}

/// One entry of an X authority file (Xau's format: big-endian 16-bit lengths), for containers
/// without `xauth`. FamilyWild matches any host, so the entry works whatever name the X
/// client looks up.
struct XAuthorityEntry: Equatable {
    static let familyWild: UInt16 = 0xFFFF
    var display: String
    var protocolName: String
    var cookie: [UInt8]

    var encoded: [UInt8] {
        var bytes: [UInt8] = []
        func put16(_ value: Int) { bytes += [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
        func field(_ data: [UInt8]) {
            put16(data.count)
            bytes += data
        }
        put16(Int(Self.familyWild))
        field([])
        field(Array(display.utf8))
        field(Array(protocolName.utf8))
        field(cookie)
        return bytes
    }

    /// `encoded` as a printf(1) format: every byte an octal escape, so any shell's printf writes it exactly.
    var printfFormat: String {
        encoded.map { byte in
            let octal = String(byte, radix: 8)
            return "\\" + String(repeating: "0", count: 3 - octal.count) + octal
        }.joined()
    }

    /// The cookie as bytes: the client sends it as hex (RFC 4254 §6.3.1); nil if it is not.
    static func cookieBytes(_ hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard !digits.isEmpty, digits.count % 2 == 0, digits.count <= 512 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = hexValue(digits[index]), let low = hexValue(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// Names such as MIT-MAGIC-COOKIE-1: letters, digits and `-_.`, nothing a shell or xauth reads specially.
    static func isProtocolName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 | 0x20 >= 0x61 && $0 | 0x20 <= 0x7A) || $0 == 0x2D || $0 == 0x5F || $0 == 0x2E }
    }

    private static func hexValue(_ digit: UInt8) -> UInt8? {
        switch digit {
        case 0x30...0x39: return digit - 0x30
        case 0x61...0x66: return digit - 0x61 + 10
        case 0x41...0x46: return digit - 0x41 + 10
        default: return nil
        }
    }
}
