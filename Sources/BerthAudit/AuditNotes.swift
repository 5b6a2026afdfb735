/// Records that other parts of Berth add to a live connection's audit log, where the audit layer
/// cannot see the event itself: an operator watching one of its sessions in the console. Nothing
/// is recorded when auditing is off or the connection is gone.
public enum AuditNotes {
    public static func consoleWatch(connectionID: String, channel: UInt64, operator name: String, started: Bool) {
        guard let recorder = AuditRecorder.open.withLockedValue({ $0[connectionID] }) else { return }
        recorder.record(started ? .consoleWatchStarted : .consoleWatchEnded, AuditPayload().text("operator", name), channel: channel)
    }
}
