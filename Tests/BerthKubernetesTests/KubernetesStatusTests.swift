import Testing
@testable import BerthKubernetes

@Suite struct KubernetesStatusTests {
    @Test func successIsExitZero() {
        guard case .status(let code, _) = KubernetesStatus.parse(#"{"metadata":{},"status":"Success"}"#) else { Issue.record("not a status"); return }
        #expect(code == 0)
    }
}
