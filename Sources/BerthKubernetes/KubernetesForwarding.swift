import BerthAgentLink
import BerthConfig

/// Port forwarding in connection and persistent mode: forwarding channels on the pod's agent
/// link, as on Docker (`AgentForwardingHost`).
extension KubernetesConnection: AgentForwardingHost {
    public var forwardingProblem: String? {
        if backend.config.pod.mode == .session { return "port forwarding does not work in session mode" }
        if link == nil { return "the pod is not running" }
        return nil
    }
}
