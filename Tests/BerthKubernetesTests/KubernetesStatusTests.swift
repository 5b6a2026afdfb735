import Testing
@testable import BerthKubernetes

@Suite struct KubernetesStatusTests {
    private func exit(_ json: String) -> (Int?, String) {
        guard case .status(let code, let message) = KubernetesStatus.parse(json) else { return (-1, "not a status") }
        return (code, message)
    }

    @Test func successIsExitZero() {
        #expect(exit(#"{"metadata":{},"status":"Success"}"#).0 == 0)
    }

    @Test func nonZeroExitCodeComesFromTheCause() {
        let json =
            #"{"metadata":{},"status":"Failure","message":"command terminated with non-zero exit code: 42","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"42"}]}}"#
        #expect(exit(json).0 == 42)
    }

    @Test func otherFailuresCarryTheirMessageWithoutACode() {
        let (code, message) = exit(#"{"status":"Failure","message":"container not found","reason":"InternalError"}"#)
        #expect(code == nil && message == "container not found")
        #expect(exit("not json").0 == nil)
        #expect(exit(#"{"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"x"}]}}"#).0 == nil)
    }

    @Test func labelValuesAreValidKubernetesLabels() {
        #expect(KubernetesPodSpec.labelValue("alice") == "alice")
        #expect(KubernetesPodSpec.labelValue("-bob@example.com-") == "bob-example.com")
        #expect(KubernetesPodSpec.labelValue(String(repeating: "x", count: 80)).count == 63)
        #expect(KubernetesPodSpec.labelValue("ünï") == "n")
    }
}
