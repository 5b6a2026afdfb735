// swift-tools-version:6.1
import PackageDescription

let package = Package(
    name: "Berth",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "berth", targets: ["berth"]),
        .executable(name: "berth-example-webhook", targets: ["berth-example-webhook"]),
        .executable(name: "berth-agent", targets: ["berth-agent"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.7.1"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Without its default traits: no swift-configuration (Berth reads its own config) and no
        // full Foundation beyond what Berth already links.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
    ],
    targets: [
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .systemLibrary(name: "CPidfd", path: "Sources/CPidfd"),
        .target(
            name: "BerthCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .target(
            name: "BerthConfig",
            dependencies: [
                "BerthCore",
                .product(name: "Yams", package: "Yams"),
            ]),
        .target(
            name: "BerthAuth",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthSSHKeys", "CCrypt",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
            ]),
        .target(
            name: "BerthSSH",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthSSHEngine", "BerthSSHKeys", "BerthSSHWire",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // Berth's own SSH engine (docs/ssh-engine.md), bottom up.
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL"),
        .target(
            name: "BerthSSHWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio")
            ]),
        .target(
            name: "BerthSSHCipher",
            dependencies: [
                "BerthSSHWire", "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        .target(
            name: "BerthSSHKeys",
            dependencies: [
                "BerthSSHWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        .target(
            name: "BerthSSHKex",
            dependencies: [
                "BerthSSHWire", "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]),
        .target(
            name: "BerthSSHEngine",
            dependencies: [
                "BerthSSHWire", "BerthSSHCipher", "BerthSSHKeys", "BerthSSHKex",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BerthDocker",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthForwarding", "BerthForwardProtocol", "BerthAgentLink", "BerthAgentProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BerthKubernetes",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthForwarding", "BerthForwardProtocol", "BerthAgentLink", "BerthAgentProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // CBOR for the agent's forwarding protocol and the audit log; standard library only.
        .target(name: "BerthCBOR"),
        .target(name: "BerthForwardProtocol", dependencies: ["BerthCBOR"]),
        // The agent link protocol (docs/agent-protocol.md); standard library only.
        .target(name: "BerthAgentProtocol"),
        // Berth's end of the agent link and the one session implementation on top of it.
        .target(
            name: "BerthAgentLink",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthAgentProtocol", "BerthForwarding", "BerthForwardProtocol", "CPidfd",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BerthForwarding",
            dependencies: [
                "BerthCore", "BerthForwardProtocol",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BerthSSHProxy",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthSSH", "BerthSSHEngine", "BerthSSHKeys", "BerthSSHWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "BerthSecurity",
            dependencies: [
                "BerthCore", "BerthConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .target(
            name: "BerthObservability",
            dependencies: [
                "BerthCore", "BerthConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        .target(
            name: "BerthAudit",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthCBOR", "CZlib",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // The operator console (docs/console.md): its own HTTP listener, off by default.
        .target(
            name: "BerthConsole",
            dependencies: [
                "BerthCore", "BerthConfig", "BerthAudit", "BerthAuth",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("Resources")]),
        .target(
            name: "BerthServer",
            dependencies: [
                "BerthAudit", "BerthCore", "BerthConfig", "BerthAuth", "BerthSSH", "BerthSSHKeys", "BerthObservability", "BerthDocker", "BerthKubernetes", "BerthSecurity",
                "BerthSSHProxy", "BerthConsole",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]),
        .executableTarget(
            name: "berth",
            dependencies: [
                "BerthAudit", "BerthCore", "BerthConfig", "BerthServer", "BerthSSH", "BerthSSHKeys", "BerthObservability",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),
        .executableTarget(
            name: "berth-example-webhook",
            dependencies: [
                "BerthConfig", "BerthCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        // The guest agent: standard library and libc only, so it links statically.
        .executableTarget(name: "berth-agent", dependencies: ["BerthForwardProtocol", "BerthAgentProtocol"]),
        .testTarget(
            name: "BerthSSHTests",
            dependencies: [
                "BerthTestSupport", "BerthCore", "BerthConfig", "BerthSSH", "BerthSSHKeys", "BerthSSHCipher", "BerthSSHKex", "BerthSSHWire", "BerthSSHEngine",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        // A deterministic generator shared by the fuzz tests.
        .target(name: "BerthTestSupport"),
        .testTarget(
            name: "BerthSSHCipherTests",
            dependencies: [
                "BerthTestSupport", "BerthSSHCipher", "BerthSSHWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "BerthSSHKeysTests",
            dependencies: [
                "BerthTestSupport", "BerthSSHKeys", "BerthSSHWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "BerthSSHKexTests",
            dependencies: [
                "BerthTestSupport", "BerthSSHKex", "BerthSSHWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "BerthSSHEngineTests",
            dependencies: [
                "BerthTestSupport", "BerthSSHEngine", "BerthSSHKeys", "BerthSSHCipher", "BerthSSHKex", "BerthSSHWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(
            name: "BerthDockerTests",
            dependencies: [
                "BerthDocker", "BerthCore", "BerthConfig",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(name: "BerthKubernetesTests", dependencies: ["BerthKubernetes", "BerthConfig", "BerthCore"]),
        .testTarget(
            name: "BerthCoreTests",
            dependencies: [
                "BerthCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]),
        .testTarget(name: "BerthCBORTests", dependencies: ["BerthCBOR"]),
        .testTarget(
            name: "BerthForwardingTests",
            dependencies: [
                "BerthForwarding", "BerthForwardProtocol", "BerthCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(name: "BerthAuditTests", dependencies: ["BerthAudit", "BerthCBOR"]),
        .testTarget(name: "BerthForwardProtocolTests", dependencies: ["BerthForwardProtocol", "BerthCBOR"]),
        .testTarget(name: "BerthAgentProtocolTests", dependencies: ["BerthAgentProtocol", "BerthTestSupport"]),
        .testTarget(
            name: "BerthAgentLinkTests",
            dependencies: [
                "BerthAgentLink", "BerthAgentProtocol", "BerthConfig", "BerthCore", "BerthTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "BerthConsoleTests",
            dependencies: [
                "BerthConsole", "BerthConfig", "BerthCore", "BerthTestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .testTarget(
            name: "BerthUnitTests",
            dependencies: [
                "BerthSecurity", "BerthCore", "BerthConfig", "BerthAuth", "BerthSSH", "BerthServer", "BerthObservability", "BerthSSHProxy",
                "BerthTestSupport",
            ]),
    ]
)
