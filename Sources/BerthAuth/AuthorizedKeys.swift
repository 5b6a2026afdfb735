import Foundation

/// OpenSSH authorized_keys lines, reduced to what identifies a key: its type and blob.
enum AuthorizedKeys {
    struct Key: Hashable {
        let type: String
        let blob: String
    }

    static let keyTypes: Set<String> = [
        "ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa", "ssh-dss",
        "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-ed25519-cert-v01@openssh.com", "ecdsa-sha2-nistp256-cert-v01@openssh.com",
        "ecdsa-sha2-nistp384-cert-v01@openssh.com", "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    ]

    /// The key of one line, skipping leading options (`no-pty,command="a b"`) and the comment.
    static func key(inLine line: String) -> Key? {
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty, !trimmed.hasPrefix("#") else { return nil }
        let fields = splitOutsideQuotes(trimmed)
        guard let typeIndex = fields.firstIndex(where: { keyTypes.contains($0) }), typeIndex + 1 < fields.count else { return nil }
        return Key(type: fields[typeIndex], blob: fields[typeIndex + 1])
    }

    static func keys(inFile text: String) -> Set<Key> {
        Set(text.split(whereSeparator: \.isNewline).compactMap { key(inLine: String($0)) })
    }

    /// Whitespace splits fields except inside double quotes, where option values may have spaces.
    private static func splitOutsideQuotes(_ line: String) -> [String] {
        var fields: [String] = []
        var current = ""
        var quoted = false
        for character in line {
            if character == "\"" { quoted.toggle() }
            if character.isWhitespace && !quoted {
                if !current.isEmpty { fields.append(current) }
                current = ""
            } else {
                current.append(character)
            }
        }
        if !current.isEmpty { fields.append(current) }
        return fields
    }

    /// `%u` → username, `%%` → `%`. Names that could leave the directory are refused.
    static func path(template: String, username: String) -> String? {
        guard !username.isEmpty, !username.contains("/"), !username.hasPrefix("."), !username.contains("\0") else { return nil }
        var result = ""
        var iterator = template.makeIterator()
        while let character = iterator.next() {
            guard character == "%" else {
                result.append(character)
                continue
            }
            switch iterator.next() {
            case "u": result += username
            case "%": result.append("%")
            case let other?: result += "%" + String(other)
            case nil: result.append("%")
            }
        }
        return result
    }
}
