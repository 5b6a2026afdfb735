import BerthCore
import BerthSSHWire
import NIOCore
import Testing
@testable import BerthSSH
import BerthTestSupport

@Suite struct SessionRequestParsingTests {
    @Test func ptyRequestWithModes() {
        var payload = ByteBuffer()
        payload.writeSSHText("xterm-256color")
        payload.writeSSHUInt32(120)
        payload.writeSSHUInt32(40)
        payload.writeSSHUInt32(640)
        payload.writeSSHUInt32(480)
        // VINTR (1) = 3, ECHO (53) = 1, TTY_OP_ISPEED (128) = 38400, then TTY_OP_END.
        payload.writeSSHString([1, 0, 0, 0, 3, 53, 0, 0, 0, 1, 128, 0, 0, 0x96, 0, 0])
        let parsed = SessionRequest.parse(type: "pty-req", payload: payload)
        #expect(
            parsed
                == .request(
                    .pty(
                        PtyRequest(
                            term: "xterm-256color", columns: 120, rows: 40, widthPixels: 640, heightPixels: 480,
                            modes: [1: 3, 53: 1, 128: 38400]))))
    }

    @Test func simpleRequests() {
        var exec = ByteBuffer()
        exec.writeSSHText("echo hi")
        #expect(SessionRequest.parse(type: "exec", payload: exec) == .request(.exec("echo hi")))
        var env = ByteBuffer()
        env.writeSSHText("LANG")
        env.writeSSHText("C.UTF-8")
        #expect(SessionRequest.parse(type: "env", payload: env) == .request(.env(name: "LANG", value: "C.UTF-8")))
        var resize = ByteBuffer()
        for value: UInt32 in [80, 24, 0, 0] { resize.writeSSHUInt32(value) }
        #expect(SessionRequest.parse(type: "window-change", payload: resize) == .request(.windowChange(WindowSize(columns: 80, rows: 24))))
        #expect(SessionRequest.parse(type: "shell", payload: ByteBuffer()) == .request(.shell))
        #expect(SessionRequest.parse(type: "x11-req", payload: ByteBuffer()) == .malformed("x11-req"))
        // RFC 4254 §6.3.1: single connection, protocol, cookie (hex), screen.
        var x11 = ByteBuffer()
        x11.writeInteger(UInt8(1))
        x11.writeSSHText("MIT-MAGIC-COOKIE-1")
        x11.writeSSHText("00112233445566778899aabbccddeeff")
        x11.writeSSHUInt32(2)
        #expect(
            SessionRequest.parse(type: "x11-req", payload: x11)
                == .request(.x11(X11Request(singleConnection: true, authProtocol: "MIT-MAGIC-COOKIE-1", cookie: "00112233445566778899aabbccddeeff", screen: 2))))
        #expect(SessionRequest.parse(type: "auth-agent-req@openssh.com", payload: ByteBuffer()) == .request(.agentForwarding))
        // RFC 4335: the break length in milliseconds.
        #expect(SessionRequest.parse(type: "break", payload: ByteBuffer(bytes: [0, 0, 1, 244])) == .request(.breakSignal(milliseconds: 500)))
        #expect(SessionRequest.parse(type: "break", payload: ByteBuffer()) == .malformed("break"))
        #expect(SessionRequest.parse(type: "exec", payload: ByteBuffer(bytes: [0, 0, 0, 9, 65])) == .malformed("exec"))
    }

    /// Whatever a client sends as request data, parsing ends in a result, never a crash.
    @Test func randomAndTruncatedPayloadsNeverCrash() {
        var generator = SeededGenerator(seed: 0x5eed)
        let types = ["env", "pty-req", "exec", "subsystem", "window-change", "signal", "shell", "break", "x11-req", "auth-agent-req@openssh.com"]
        for round in 0..<20_000 {
            let length = Int(generator.next() % 64)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if round % 3 == 0, length > 4 { bytes[0...3] = [0, 0, 0, UInt8(length - 4)] }
            _ = SessionRequest.parse(type: types[round % types.count], payload: ByteBuffer(bytes: bytes))
        }
    }
}
