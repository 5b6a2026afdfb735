/// Go duration syntax, the form ContainerSSH configuration files use.
public enum DurationFormat {
    private static let units: [(suffix: String, nanoseconds: Double)] = [
        ("ns", 1), ("us", 1e3), ("µs", 1e3), ("μs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9),
    ]

    /// Parses `1h2m3.5s`, `250ms`, `0`. Returns nil for anything else (including negatives).
    public static func parse(_ text: String) -> BerthDuration? {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if rest == "0" { return .zero }
        guard !rest.isEmpty else { return nil }
        var total = 0.0
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !($0.isNumber || $0 == ".") }
            guard let unit = units.filter({ unitText == $0.suffix }).first else { return nil }
            rest = rest.dropFirst(unitText.count)
            total += value * unit.nanoseconds
        }
        guard total < Double(Int64.max) else { return nil }
        return BerthDuration(nanoseconds: Int64(total.rounded()))
    }

    /// Renders the shortest Go-style form: `1m30s`, `250ms`, `0s`.
    public static func render(_ duration: BerthDuration) -> String {
        var ns = duration.nanoseconds
        if ns == 0 { return "0s" }
        if ns < 1_000_000_000 {
            if ns % 1_000_000 == 0 { return "\(ns / 1_000_000)ms" }
            if ns % 1_000 == 0 { return "\(ns / 1_000)us" }
            return "\(ns)ns"
        }
        var text = ""
        let hours = ns / 3_600_000_000_000
        if hours > 0 { text += "\(hours)h"; ns -= hours * 3_600_000_000_000 }
        let minutes = ns / 60_000_000_000
        if minutes > 0 { text += "\(minutes)m"; ns -= minutes * 60_000_000_000 }
        if ns > 0 || text.isEmpty {
            let seconds = ns / 1_000_000_000
            let fraction = ns % 1_000_000_000
            if fraction == 0 {
                text += "\(seconds)s"
            } else {
                var digits = String(String(fraction).reversed().drop(while: { $0 == "0" }).reversed())
                digits = String(repeating: "0", count: 9 - String(fraction).count) + digits
                text += "\(seconds).\(digits)s"
            }
        }
        return text
    }
}
