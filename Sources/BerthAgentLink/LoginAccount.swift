import BerthAgentProtocol
import BerthConfig
import BerthCore

extension LoginUserConfig {
    /// The account the programs of `username` run as; nil when they run as the container's own
    /// user (`mode: container`).
    public func account(for username: String) -> AgentUser? {
        guard mode == .login else { return nil }
        let name = Self.accountName(for: username)
        let home = (homeRoot.hasSuffix("/") ? String(homeRoot.dropLast()) : homeRoot) + "/" + name
        return AgentUser(name: name, uid: uid, gid: gid ?? uid, home: home, shell: shell, flags: sudo ? AgentUser.sudo : 0)
    }

    /// A login name as an account name (`[a-z_][a-z0-9_.-]*`, at most 32): lower case, anything
    /// else becomes `_`, a leading `_` where the first character may not start a name. Names a
    /// person types (`alice`, `bob.smith`) stay as they are; `Alice@Example.com` becomes
    /// `alice_example.com`.
    public static func accountName(for username: String) -> String {
        var bytes: [UInt8] = []
        for scalar in username.unicodeScalars {
            let lower = scalar.isASCII ? UInt8(scalar.value) | (scalar.properties.isUppercase ? 0x20 : 0) : UInt8(ascii: "_")
            bytes.append(AgentUser.mayBeInAccountName(lower) ? lower : UInt8(ascii: "_"))
        }
        if let first = bytes.first, !AgentUser.mayStartAccountName(first) { bytes.insert(UInt8(ascii: "_"), at: 0) }
        if bytes.isEmpty { bytes = Array("user".utf8) }
        return String(decoding: bytes.prefix(32), as: UTF8.self)
    }
}

extension AgentLink {
    /// The webhook's `files` (mode 0600), in path order, after the account so they belong to it.
    /// A failure names the file; `code` is the backend's.
    public func writeFiles(_ files: [String: FileValue], as account: AgentUser?, failure code: MessageCode, into place: String) async throws {
        if let account, !files.isEmpty { _ = try await useAccount(account) }
        for (path, file) in files.sorted(by: { $0.key < $1.key }) {
            do {
                try await writeFile(path: path, contents: file.value)
            } catch {
                throw AgentLinkError(code, "writing \(path) into the \(place) failed: \((error as? CodedError)?.message ?? "\(error)")")
            }
        }
    }
}
