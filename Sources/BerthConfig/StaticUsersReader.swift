import Foundation

/// Built-in users, inline or in a users file of the same shape (`users: [...]`).
enum StaticUsersReader {
    static func read(_ reader: inout ObjectReader, required: Bool) -> StaticUsersConfig {
        var config = StaticUsersConfig()
        config.users = readUsers(&reader)
        config.usersFile = reader.string("usersFile", "")
        reader.finish()
        if required, config.users.isEmpty, config.usersFile.isEmpty {
            reader.issues.add(reader.path, "static needs users or a usersFile")
        }
        return config
    }

    static func readUsers(_ reader: inout ObjectReader) -> [StaticUser] {
        guard let list = reader.value("users") else { return [] }
        guard case .array(let items) = list else {
            reader.issues.add(reader.keyPath("users"), "expected a list of users, got \(list.brief)")
            return []
        }
        return items.enumerated().compactMap { index, item in
            var user = ObjectReader(item, path: "\(reader.keyPath("users"))[\(index)]", issues: reader.issues)
            let name = user.string("username", "")
            let hash = user.string("passwordHash", "")
            let keys = user.strings("authorizedKeys", [])
            let totp = user.string("totpSecret", "")
            if !totp.isEmpty, (Base32.decode(totp)?.count ?? 0) < 10 {
                reader.issues.add(user.keyPath("totpSecret"), "must be a base32 secret of at least 10 bytes (16 characters), as authenticator apps use")
            }
            user.finish()
            if name.isEmpty { reader.issues.add(user.keyPath("username"), "required") }
            if !hash.isEmpty, !(hash.hasPrefix("$") && hash.dropFirst().contains("$")) {
                reader.issues.add(user.keyPath("passwordHash"), "must be a crypt(3) hash such as $y$… or $6$… (make one with mkpasswd)")
            }
            for (keyIndex, line) in keys.enumerated() {
                let path = "\(user.keyPath("authorizedKeys"))[\(keyIndex)]"
                do throws(AuthorizedKeyLine.Refusal) {
                    if try AuthorizedKeyLine.parse(line) == nil { reader.issues.add(path, "expected \"[OPTIONS] TYPE BASE64 [comment]\"") }
                } catch {
                    reader.issues.add(path, error.reason)
                }
            }
            return name.isEmpty ? nil : StaticUser(username: name, passwordHash: hash, authorizedKeys: keys, totpSecret: totp)
        }
    }
}

extension StaticUsersConfig {
    /// Inline users plus those in `usersFile`, read with the same strictness as the main file.
    public func allUsers() throws -> [StaticUser] {
        guard !usersFile.isEmpty else { return users }
        let text: String
        do {
            text = try String(contentsOfFile: usersFile, encoding: .utf8)
        } catch {
            throw ConfigError(path: usersFile, "cannot read users file: \((error as NSError).localizedDescription)")
        }
        let issues = ConfigIssues()
        var reader = ObjectReader(try ConfigValue.parse(text, format: ConfigFormat(path: usersFile), source: usersFile), path: usersFile, issues: issues)
        let fileUsers = StaticUsersReader.readUsers(&reader)
        reader.finish()
        try issues.throwIfAny()
        return users + fileUsers
    }
}
