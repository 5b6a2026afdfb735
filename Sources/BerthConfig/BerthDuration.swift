/// A configuration duration. Written as Go duration strings (`30s`, `1m30s`, `250ms`) or
/// integer nanoseconds, as ContainerSSH files do.
public struct BerthDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }
    public static func seconds(_ value: Int64) -> BerthDuration { .init(nanoseconds: value * 1_000_000_000) }
    public static func milliseconds(_ value: Int64) -> BerthDuration { .init(nanoseconds: value * 1_000_000) }
    public static let zero = BerthDuration(nanoseconds: 0)

    public var duration: Duration { .nanoseconds(nanoseconds) }
    public var timeInterval: Double { Double(nanoseconds) / 1e9 }
    public static func < (lhs: BerthDuration, rhs: BerthDuration) -> Bool { lhs.nanoseconds < rhs.nanoseconds }

    /// Go-style rendering (`1m30s`, `250ms`, `0s`), used by `config check`.
    public var description: String { DurationFormat.render(self) }
}
