/// A stable identifier for every log message and user-facing error, so operators can grep,
/// alert and look them up in the documentation. The list lives in `docs/message-codes.md`.
public struct MessageCode: Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    public let rawValue: String

    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
}

/// An error that carries a message code and a message meant for the operator.
public protocol CodedError: Error, CustomStringConvertible {
    var code: MessageCode { get }
    var message: String { get }
}

extension CodedError {
    public var description: String { "\(code): \(message)" }
}

/// A general coded error for places that need no dedicated type.
public struct BerthError: CodedError, Hashable {
    public let code: MessageCode
    public let message: String

    public init(_ code: MessageCode, _ message: String) {
        self.code = code
        self.message = message
    }
}
