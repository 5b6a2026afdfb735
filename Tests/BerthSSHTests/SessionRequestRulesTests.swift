import Testing
@testable import BerthSSH

@Suite struct SessionRequestRulesTests {
    @Test func configuringAllowsSetupAndOneProgram() {
        var rules = SessionRequestRules()
        #expect(rules.check(.env) == nil)
        #expect(rules.check(.pty) == nil)
        #expect(rules.check(.forwarding) == nil)
        #expect(rules.check(.signal) != nil)
        #expect(rules.check(.windowChange) != nil)
        #expect(rules.check(.program) == nil)
        rules.programStarted()
        #expect(rules.check(.program) != nil)
        #expect(rules.check(.env) != nil)
        #expect(rules.check(.pty) != nil)
        // DISPLAY and SSH_AUTH_SOCK reach only a program that has yet to start.
        #expect(rules.check(.forwarding) != nil)
        #expect(rules.check(.signal) == nil)
        #expect(rules.check(.windowChange) == nil)
    }

    @Test func finishedProgramRefusesEverything() {
        var rules = SessionRequestRules()
        rules.programStarted()
        rules.programFinished()
        for kind in [SessionRequestRules.Kind.env, .pty, .forwarding, .program, .signal, .windowChange] {
            #expect(rules.check(kind) != nil)
        }
    }

    @Test func exitBeforeStartAcknowledgementStaysFinished() {
        // A fast program may report its exit before the start request is answered.
        var rules = SessionRequestRules()
        rules.programFinished()
        rules.programStarted()
        #expect(rules.check(.signal) != nil)
    }
}
