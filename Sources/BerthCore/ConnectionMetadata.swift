import Logging

/// A string value carried between webhooks, with the flag that keeps it out of logs.
public struct MetadataValue: Sendable, Hashable {
    public var value: String
    public var sensitive: Bool

    public init(value: String, sensitive: Bool = false) {
        self.value = value
        self.sensitive = sensitive
    }
}

/// A file to be placed into the user's container, carried between webhooks.
public struct FileValue: Sendable, Hashable {
    public var value: [UInt8]
    public var sensitive: Bool

    public init(value: [UInt8], sensitive: Bool = false) {
        self.value = value
        self.sensitive = sensitive
    }
}

/// What a webhook may add to a connection: merged key by key over what it already carries.
public struct MetadataUpdate: Sendable, Hashable {
    public var authenticatedUsername: String?
    public var metadata: [String: MetadataValue]
    public var environment: [String: MetadataValue]
    public var files: [String: FileValue]

    public init(
        authenticatedUsername: String? = nil,
        metadata: [String: MetadataValue] = [:],
        environment: [String: MetadataValue] = [:],
        files: [String: FileValue] = [:]
    ) {
        self.authenticatedUsername = authenticatedUsername
        self.metadata = metadata
        self.environment = environment
        self.files = files
    }
}

/// Everything known about a connection, from TCP accept through authentication. Each layer
/// receives it and may return an enriched copy.
public struct ConnectionMetadata: Sendable, Hashable {
    public let connectionID: ConnectionID
    public let remoteAddress: RemoteAddress
    public var clientVersion: String
    /// The name the client typed.
    public var username: String
    /// The identity an authenticator proved; equal to `username` unless a webhook said otherwise.
    public var authenticatedUsername: String?
    public var metadata: [String: MetadataValue]
    public var environment: [String: MetadataValue]
    public var files: [String: FileValue]
    /// What the login key's own options allow; set by the auth layer, never by a webhook.
    public var restrictions = LoginRestrictions()
    /// The first factor succeeded and the auth layer waits for `onAuthSecondFactor`.
    public var secondFactorPending = false
    /// Set by the SSH front end for a FIDO security key attempt: what its signature asserted.
    public var securityKey: SecurityKeyAssertion?

    public init(
        connectionID: ConnectionID,
        remoteAddress: RemoteAddress,
        clientVersion: String = "",
        username: String = "",
        authenticatedUsername: String? = nil,
        metadata: [String: MetadataValue] = [:],
        environment: [String: MetadataValue] = [:],
        files: [String: FileValue] = [:]
    ) {
        self.connectionID = connectionID
        self.remoteAddress = remoteAddress
        self.clientVersion = clientVersion
        self.username = username
        self.authenticatedUsername = authenticatedUsername
        self.metadata = metadata
        self.environment = environment
        self.files = files
    }

    /// Applies a webhook reply. An absent or empty `authenticatedUsername` keeps the previous
    /// identity (ContainerSSH blanks it; docs/architecture.md, "ContainerSSH defects Berth does not copy").
    public func merging(_ update: MetadataUpdate) -> ConnectionMetadata {
        var copy = self
        if let name = update.authenticatedUsername, !name.isEmpty {
            copy.authenticatedUsername = name
        } else if copy.authenticatedUsername == nil {
            copy.authenticatedUsername = username
        }
        copy.metadata.merge(update.metadata) { _, new in new }
        copy.environment.merge(update.environment) { _, new in new }
        copy.files.merge(update.files) { _, new in new }
        return copy
    }

    /// The identity to use once authenticated.
    public var effectiveUsername: String { authenticatedUsername ?? username }
}

extension ConnectionMetadata {
    /// The webhook's `environment`, plus its `metadata` when the operator exposes it. With
    /// `includeSensitive: false`, entries marked sensitive are left out: for places an engine or
    /// API server keeps and shows (a container's or pod's spec), as opposed to the agent link.
    public func programEnvironment(exposeMetadata: Bool, includeSensitive: Bool = true) -> [String: String] {
        var result = environment.filter { includeSensitive || !$0.value.sensitive }.mapValues(\.value)
        if exposeMetadata {
            result.merge(metadata.filter { includeSensitive || !$0.value.sensitive }.mapValues(\.value)) { current, _ in current }
        }
        return result
    }

    /// The environment for a container's or pod's spec (sensitive entries left out); what was
    /// left out is named in a warning with the backend's `code`, so the operator knows why a
    /// program misses it.
    public func specEnvironment(exposeMetadata: Bool, logger: Logger, code: MessageCode, spec: String) -> [String: String] {
        let kept = programEnvironment(exposeMetadata: exposeMetadata, includeSensitive: false)
        let left = Set(programEnvironment(exposeMetadata: exposeMetadata).keys).subtracting(kept.keys)
        if !left.isEmpty {
            logger.log(
                .warning, code, "sensitive environment entries are not put into the \(spec)",
                ["names": "\(left.sorted().joined(separator: ","))"])
        }
        return kept
    }
}
