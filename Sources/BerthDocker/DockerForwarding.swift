import BerthAgentLink
import BerthConfig

/// Port forwarding in connection mode: forwarding channels on the container's agent link
/// (`AgentForwardingHost`).
extension DockerConnection: AgentForwardingHost {
    public var forwardingProblem: String? {
        if execution.mode == .session { return "port forwarding does not work in session mode" }
        if execution.disableAgent { return "port forwarding needs the agent, which is disabled" }
        if link == nil { return "the container is not running" }
        return nil
    }
}
