import BerthConfig
import BerthCore
import Testing
@testable import BerthSSHProxy

/// Which name the proxy backend logs in upstream with (issue 20: identity after login).
@Suite struct ProxyUsernameTests {
    private func metadata(typed: String, authenticated: String?) -> ConnectionMetadata {
        ConnectionMetadata(
            connectionID: ConnectionID(hex: "0123456789abcdef0123456789abcdef")!,
            remoteAddress: RemoteAddress(ip: "::1", port: 5022), username: typed,
            authenticatedUsername: authenticated)
    }

    @Test func passThroughUsesTheAuthenticatedUsernameNotTheTypedOne() {
        var config = SSHProxyConfig()
        config.usernamePassThrough = true
        #expect(SSHProxyBackend.upstreamUsername(config, metadata(typed: "root", authenticated: "bob")) == "bob")
        // No authenticator renamed the user: the typed name is the identity.
        #expect(SSHProxyBackend.upstreamUsername(config, metadata(typed: "alice", authenticated: nil)) == "alice")
    }

    @Test func withoutPassThroughTheConfiguredUsernameIsUsed() {
        var config = SSHProxyConfig()
        config.username = "relay"
        #expect(SSHProxyBackend.upstreamUsername(config, metadata(typed: "root", authenticated: "bob")) == "relay")
    }
}
