import BerthCore

/// One forwarded connection's state on Berth's side (docs/agent-protocol.md, "Forwarding"). CLOSE_CONNECTION is a half-close:
/// "this side has sent everything"; the connection ends when both sides have.
final class ForwardLink: Sendable {
    let id: UInt64
    let channel: any ForwardChannel

    init(id: UInt64, channel: any ForwardChannel) {
        self.id = id
        self.channel = channel
    }
}

struct ForwardLinkState {
    let link: ForwardLink
    /// We told the agent the client has finished sending (CLOSE, or SUCCESS answering its CLOSE).
    var sentClose = false
    /// The agent has finished sending.
    var peerDone = false
}
