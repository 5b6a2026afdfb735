/// How an `exec` command string becomes argv (docs/configuration.md, "docker"): shell-word splitting when it names a
/// program by path (`/`, `./`, `../`), otherwise `/bin/sh -c` runs it.
public enum ShellWords {
    public static func argv(for command: String) -> [String] {
        if command.hasPrefix("/") || command.hasPrefix("./") || command.hasPrefix("../"), let words = split(command), !words.isEmpty {
            return words
        }
        return ["/bin/sh", "-c", command]
    }

    /// POSIX-like word splitting with single quotes, double quotes and backslashes; nil when a
    /// quote is left open.
    public static func split(_ text: String) -> [String]? {
        var words: [String] = []
        var current = ""
        var inWord = false
        var iterator = Array(text).makeIterator()
        while let character = iterator.next() {
            switch character {
            case " ", "\t", "\n":
                if inWord { words.append(current); current = ""; inWord = false }
            case "'":
                inWord = true
                while true {
                    guard let next = iterator.next() else { return nil }
                    if next == "'" { break }
                    current.append(next)
                }
            case "\"":
                inWord = true
                while true {
                    guard let next = iterator.next() else { return nil }
                    if next == "\"" { break }
                    if next == "\\" {
                        guard let escaped = iterator.next() else { return nil }
                        if !"\"\\$`".contains(escaped) { current.append("\\") }
                        current.append(escaped)
                    } else {
                        current.append(next)
                    }
                }
            case "\\":
                inWord = true
                guard let escaped = iterator.next() else { return nil }
                current.append(escaped)
            default:
                inWord = true
                current.append(character)
            }
        }
        if inWord { words.append(current) }
        return words
    }
}
