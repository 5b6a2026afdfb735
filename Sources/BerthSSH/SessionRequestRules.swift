/// The order rules (docs/architecture.md, "The layer stack") for requests on one session channel, as a value type so they can
/// be tested without sockets: env/pty before the program starts, one program per channel,
/// signal/window-change only while it runs.
struct SessionRequestRules {
    enum Phase { case configuring, running, finished }
    enum Kind { case env, pty, forwarding, program, signal, windowChange }

    private(set) var phase = Phase.configuring

    /// Returns the reason to refuse, or nil when the request may proceed.
    func check(_ kind: Kind) -> String? {
        switch (kind, phase) {
        case (.env, .configuring), (.pty, .configuring), (.forwarding, .configuring), (.program, .configuring),
            (.signal, .running), (.windowChange, .running):
            return nil
        case (.env, _), (.pty, _):
            return "the program already started; environment and terminal must be requested before it"
        case (.forwarding, _):
            return "the program already started; X11 and agent forwarding must be requested before it"
        case (.program, _):
            return "a program already runs on this channel"
        case (.signal, _):
            return "cannot send signal, program is not running"
        case (.windowChange, _):
            return "cannot resize window, program is not running"
        }
    }

    mutating func programStarted() { if phase == .configuring { phase = .running } }
    mutating func programFinished() { phase = .finished }
}
