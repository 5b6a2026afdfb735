import BerthCore
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import BerthConfig
@testable import BerthSecurity

@Suite struct EnvironmentPolicyTests {
    private func session(_ build: (inout SecurityConfig) -> Void = { _ in }) -> (SecureSession, RecordingSession) {
        var config = SecurityConfig()
        build(&config)
        let inner = RecordingSession()
        return (SecureSession(next: inner, policy: SecurityPolicy(config), logger: Logger(label: "test"), onClosed: {}), inner)
    }

    private func refusal(_ session: SecureSession, _ name: String, _ value: String = "x") async -> MessageCode? {
        do {
            try await session.onEnv(requestID: 0, name: name, value: value)
            return nil
        } catch let error as RequestRefused {
            return error.code
        } catch {
            return "UNEXPECTED"
        }
    }

    @Test(arguments: ["LD_PRELOAD=/x.so:", "BASH_FUNC_ls%%", "", "1ABC", "A-B", "A B", "A\nB", "Ä", "A=", "=A"])
    func invalidNamesAreRefusedBeforeAnyList(name: String) async {
        // `enable` with an empty deny list would let every name through on its own.
        let (open, inner) = session()
        #expect(await refusal(open, name) == "SECURITY_ENV_INVALID_NAME")
        let (allowing, _) = session {
            $0.env.mode = .filter; $0.env.allow = [name]
        }
        #expect(await refusal(allowing, name) == "SECURITY_ENV_INVALID_NAME")
        #expect(inner.names.isEmpty)
    }

    @Test(arguments: ["A", "_", "_x1", "LANG", "LC_ALL", "lower_case9"])
    func validNamesPass(name: String) async {
        let (open, inner) = session()
        #expect(await refusal(open, name) == nil)
        #expect(inner.names == [name])
    }

    @Test func denyListCannotBeDodgedWithAnEqualsSign() async {
        let (denying, inner) = session { $0.env.deny = ["LD_PRELOAD"] }
        #expect(await refusal(denying, "LD_PRELOAD") == "SECURITY_REQUEST_REFUSED")
        #expect(await refusal(denying, "LD_PRELOAD=/x.so:", "y") == "SECURITY_ENV_INVALID_NAME")
        #expect(inner.names.isEmpty)
    }

    @Test(arguments: [
        "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT", "BASH_FUNC_ls", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS",
        "PS4", "PROMPT_COMMAND", "IFS", "PATH", "GCONV_PATH", "PYTHONPATH", "PERL5OPT", "NODE_OPTIONS", "GIT_CONFIG_COUNT",
    ])
    func forcedCommandRefusesLoaderAndShellVariables(name: String) async {
        let (forced, inner) = session { $0.forceCommand = "/usr/bin/report" }
        #expect(await refusal(forced, name) == "SECURITY_REQUEST_REFUSED")
        #expect(inner.names.isEmpty)
        // Without a forced command the user may run anything, so these are not special.
        let (free, _) = session()
        #expect(await refusal(free, name) == nil)
    }

    @Test func forcedCommandKeepsOrdinaryVariablesAndRefusesOldStyleFunctions() async {
        let (forced, inner) = session { $0.forceCommand = "/usr/bin/report" }
        for name in ["LANG", "LC_ALL", "TERM", "TZ", "GIT_PROTOCOL"] {
            #expect(await refusal(forced, name, "C") == nil)
        }
        #expect(await refusal(forced, "HARMLESS", "() { :; }; touch /tmp/pwned") == "SECURITY_REQUEST_REFUSED")
        #expect(inner.names == ["LANG", "LC_ALL", "TERM", "TZ", "GIT_PROTOCOL"])
    }

    @Test func countAndSizeAreCapped() async {
        let (capped, inner) = session {
            $0.envLimits.maxVariables = 2; $0.envLimits.maxSize = 10
        }
        #expect(await refusal(capped, "ABCDE", "123456") == "SECURITY_ENV_LIMIT")
        #expect(await refusal(capped, "ABCDE", "12345") == nil)
        #expect(await refusal(capped, "B") == nil)
        #expect(await refusal(capped, "C") == "SECURITY_ENV_LIMIT")
        #expect(inner.names == ["ABCDE", "B"])
        // A refused request does not count; defaults cap too, -1 lifts a cap.
        let (defaults, _) = session()
        #expect(await refusal(defaults, "BIG", String(repeating: "x", count: 40000)) == "SECURITY_ENV_LIMIT")
        let (unlimited, _) = session {
            $0.envLimits.maxSize = -1; $0.envLimits.maxVariables = -1
        }
        #expect(await refusal(unlimited, "BIG", String(repeating: "x", count: 40000)) == nil)
    }

    @Test func limitsAreReadFromTheEnvBlockAndBadValuesNamed() throws {
        let auth = "auth:\n  password:\n    method: webhook\n    webhook:\n      url: http://127.0.0.1:8080\n"
        let read = try ConfigLoader.parse(auth + "security:\n  env:\n    maxVariables: 5\n    maxSize: -1\n", format: .yaml, source: "a.yaml")
        #expect(read.config.security.envLimits.maxVariables == 5 && read.config.security.envLimits.maxSize == -1)
        #expect(try ConfigLoader.parse(auth, format: .yaml, source: "a.yaml").config.security.envLimits == SecurityConfig.EnvLimits())
        #expect(ConfigRenderer.yaml(read.config).contains("maxVariables: 5"))
        let problems: [String]
        do {
            _ = try ConfigLoader.parse(auth + "security:\n  env:\n    maxVariables: -2\n    maxSize: big\n    maxVars: 3\n", format: .yaml, source: "b.yaml")
            problems = []
        } catch let error as ConfigError {
            problems = error.problems.map(\.description)
        }
        #expect(problems.contains("security.env.maxVariables: must be at least -1, got -2"))
        #expect(problems.contains("security.env.maxSize: expected an integer, got \"big\""))
        #expect(problems.contains("security.env.maxVars: unknown key"))
    }

    @Test func defaultCountCapIsOpenSSHs() async {
        let (defaults, inner) = session()
        for index in 0..<128 { #expect(await refusal(defaults, "V\(index)") == nil) }
        #expect(await refusal(defaults, "ONE_MORE") == "SECURITY_ENV_LIMIT")
        #expect(inner.names.count == 128)
    }
}

/// The backend side of a session: records the env requests that got through.
final class RecordingSession: SessionChannelHandler {
    private let received = NIOLockedValueBox<[String]>([])
    var names: [String] { received.withLockedValue { $0 } }

    func onEnv(requestID: UInt64, name: String, value: String) async throws { received.withLockedValue { $0.append(name) } }
    func onPtyRequest(requestID: UInt64, _ pty: PtyRequest) async throws {}
    func onShell(requestID: UInt64) async throws {}
    func onExec(requestID: UInt64, command: String) async throws {}
    func onSubsystem(requestID: UInt64, name: String) async throws {}
    func onWindowChange(requestID: UInt64, _ size: WindowSize) async throws {}
    func onSignal(requestID: UInt64, signal: String) async throws {}
    func onUnsupportedRequest(requestID: UInt64, type: String) async {}
    func onClose() async {}
}
