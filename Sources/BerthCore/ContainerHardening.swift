/// What Docker containers and Kubernetes pods share of Berth's hardening defaults
/// (docs/security.md).
public enum ContainerHardening {
    /// Docker's default capability set without NET_RAW (raw sockets: ARP spoofing and sniffing
    /// other users' traffic on a shared network) and MKNOD (device nodes). Added back after
    /// dropping ALL, so the set is the same whatever the runtime's own default is.
    public static let capabilities = [
        "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETFCAP",
        "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
    ]
}
