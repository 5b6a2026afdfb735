import BerthConfig
import BerthCore
import Testing
@testable import BerthAuth
@testable import BerthSecurity

@Suite struct SecurityPolicyTests {
    private func policy(_ build: (inout SecurityConfig) -> Void) -> SecurityPolicy {
        var config = SecurityConfig()
        build(&config)
        return SecurityPolicy(config)
    }

    @Test func defaultsAllowEverythingButForwarding() {
        let open = policy { _ in }
        #expect(open.allowsEnv("X") && open.allowsCommand("ls") && open.allowsShell() && open.allowsTTY())
        #expect(open.allowsSubsystem("sftp") && open.allowsSignal("TERM"))
        #expect(!open.allowsForwarding(open.config.forwarding.forwardingMode))
        #expect(open.maxSessions == nil && open.forceCommand == nil)
    }

    @Test func socketX11AndAgentForwardingNeedTheirModeAndTheKeysPermission() {
        let off = policy { _ in }
        #expect(off.refusesSocketForwarding(listen: false) != nil && off.refusesSocketForwarding(listen: true) != nil)
        #expect(off.refusesX11() != nil && off.refusesAgentForwarding() != nil)
        // defaultMode does not turn forwarding on (ContainerSSH's rule).
        #expect(policy { $0.defaultMode = .enable }.refusesAgentForwarding() != nil)
        var config = SecurityConfig()
        config.forwarding.socketForwardingMode = .enable
        config.forwarding.socketListenMode = .filter
        config.forwarding.x11ForwardingMode = .enable
        config.forwarding.agentForwardingMode = .enable
        let on = SecurityPolicy(config)
        #expect(on.refusesSocketForwarding(listen: false) == nil && on.refusesX11() == nil && on.refusesAgentForwarding() == nil)
        #expect(on.refusesSocketForwarding(listen: true)?.contains("socketListenMode") == true)
        var restricted = LoginRestrictions()
        restricted.portForwarding = false
        restricted.x11Forwarding = false
        restricted.agentForwarding = false
        let keyed = SecurityPolicy(config, restrictions: restricted)
        #expect(keyed.refusesSocketForwarding(listen: false)?.contains("no-port-forwarding") == true)
        #expect(keyed.refusesX11()?.contains("no-X11-forwarding") == true)
        #expect(keyed.refusesAgentForwarding()?.contains("no-agent-forwarding") == true)
    }

    @Test func enableDeniesListedFilterAllowsListedDisableRefusesAll() {
        let mixed = policy {
            $0.env.mode = .enable; $0.env.deny = ["SECRET"]
            $0.command.mode = .filter; $0.command.allow = ["whoami"]
            $0.signal.mode = .disable
        }
        #expect(!mixed.allowsEnv("SECRET") && mixed.allowsEnv("OTHER"))
        #expect(mixed.allowsCommand("whoami") && !mixed.allowsCommand("whoami ") && !mixed.allowsCommand("ls"))
        #expect(!mixed.allowsSignal("TERM"))
    }

    @Test func defaultModeAppliesToUnsetFiltersAndFilterMeansNoForShellAndTTY() {
        let strict = policy {
            $0.defaultMode = .filter; $0.subsystem.allow = ["sftp"]
        }
        #expect(strict.allowsSubsystem("sftp") && !strict.allowsSubsystem("x"))
        #expect(!strict.allowsShell() && !strict.allowsTTY() && !strict.allowsEnv("A"))
        let disabled = policy {
            $0.defaultMode = .disable; $0.shell.mode = .enable
        }
        #expect(disabled.allowsShell() && !disabled.allowsCommand("ls"))
    }

    @Test func configWebhookReplyNeedsAConfigObject() throws {
        let reply = try ConfigWebhookClient.decode(Array(#"{"config": {"backend": "docker"}, "environment": {"A": {"value": "1"}}}"#.utf8))
        #expect(reply.config["backend"] == .string("docker"))
        #expect(reply.update.environment["A"]?.value == "1")
        #expect(throws: WebhookError.self) { try ConfigWebhookClient.decode(Array(#"{"backend": "docker"}"#.utf8)) }
        #expect(throws: WebhookError.self) { try ConfigWebhookClient.decode(Array(#"{"config": []}"#.utf8)) }
        #expect(throws: WebhookError.self) { try ConfigWebhookClient.decode(Array("nope".utf8)) }
    }
}

@Suite struct ForwardingModeConfigTests {
    @Test func agentForwardingModeIsReadAndBadValuesAreRefusedByName() throws {
        let yaml =
            minimalAuthYAML + """
                security:
                  forwarding:
                    socketForwardingMode: enable
                    socketListenMode: enable
                    x11ForwardingMode: enable
                    agentForwardingMode: enable
                """
        let forwarding = try readConfig(yaml).config.security.forwarding
        #expect(forwarding.agentForwardingMode == .enable && forwarding.x11ForwardingMode == .enable)
        #expect(forwarding.socketForwardingMode == .enable && forwarding.socketListenMode == .enable)
        #expect(try readConfig(minimalAuthYAML + "security: {}\n").config.security.forwarding.agentForwardingMode == .unset)
        let problems = configProblems(minimalAuthYAML + "security:\n  forwarding:\n    agentForwardingMode: sometimes\n")
        #expect(problems.count == 1 && problems[0].contains("agentForwardingMode"))
    }
}
