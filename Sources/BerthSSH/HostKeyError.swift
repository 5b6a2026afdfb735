import BerthCore

/// Host key problems reported with the key's position in `ssh.hostkeys`. Always a startup error.
public struct HostKeyConfigError: CodedError {
    public let code: MessageCode = "SSH_HOST_KEY_INVALID"
    public let message: String
}
