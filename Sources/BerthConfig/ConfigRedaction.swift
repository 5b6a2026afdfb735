/// What `berth config check` shows instead of a secret. Configuration files are read by
/// operators, pasted into tickets and printed in CI logs; the effective configuration must not
/// carry passwords or key material with it. Everything else is shown as `berth serve` uses it.
enum ConfigRedaction {
    static let marker = "<redacted>"

    /// Passwords, hashes, tokens: always hidden when set.
    static func secret(_ value: String) -> ConfigValue { .string(value.isEmpty ? "" : marker) }

    /// Options that take PEM text or a file path: a path is shown, key material is not.
    static func keyMaterial(_ value: String) -> ConfigValue {
        .string(value.contains("-----") || value.contains(where: \.isNewline) ? marker : value)
    }

    /// `scheme://user:password@host/…`: the password goes, the rest stays readable.
    static func url(_ value: String) -> ConfigValue {
        guard let scheme = value.range(of: "://") else { return .string(value) }
        let authorityEnd = value[scheme.upperBound...].firstIndex(where: { "/?#".contains($0) }) ?? value.endIndex
        let authority = value[scheme.upperBound..<authorityEnd]
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return .string(value) }
        return .string(String(value[..<value.index(after: colon)]) + marker + String(value[at...]))
    }

    /// Docker's registry credentials (`docker.execution.auth`): every field but the ones that
    /// name the account and the registry (`password`, `auth`, `identitytoken`, `registrytoken`).
    static func registryAuth(_ value: ConfigValue) -> ConfigValue {
        guard case .object(let fields) = value else { return value }
        let shown: Set<String> = ["username", "email", "serveraddress"]
        return .object(
            fields.map { field in
                if shown.contains(field.key.lowercased()) || field.value == .null || field.value == .string("") { return field }
                return (field.key, .string(marker))
            })
    }
}
