// swift-tools-version:6.0
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
        .package(url: "https://github.com/apple/swift-nio-ssh.git", from: "0.15.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
    ],
    targets: [
        .systemLibrary(name: "CCrypt", path: "Sources/CCrypt"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        .target(name: "BerthCore", dependencies: [
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .target(name: "BerthConfig", dependencies: [
            "BerthCore",
            .product(name: "Yams", package: "Yams"),
        ]),
        .target(name: "BerthAuth", dependencies: [
            "BerthCore", "BerthConfig", "CCrypt",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "BerthSSH", dependencies: [
            "BerthCore", "BerthConfig",
            .product(name: "NIOSSH", package: "swift-nio-ssh"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "BerthDocker", dependencies: [
            "BerthCore", "BerthConfig", "BerthForwarding", "BerthForwardProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // CBOR for the agent's forwarding protocol and the audit log; standard library only.
        .target(name: "BerthCBOR"),
        .target(name: "BerthForwardProtocol", dependencies: ["BerthCBOR"]),
        .target(name: "BerthForwarding", dependencies: [
            "BerthCore", "BerthForwardProtocol",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "BerthSSHProxy", dependencies: [
            "BerthCore", "BerthConfig", "BerthSSH",
            .product(name: "NIOSSH", package: "swift-nio-ssh"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "BerthSecurity", dependencies: [
            "BerthCore", "BerthConfig",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .target(name: "BerthObservability", dependencies: [
            "BerthCore", "BerthConfig",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ]),
        .target(name: "BerthAudit", dependencies: [
            "BerthCore", "BerthConfig", "BerthCBOR", "CZlib",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .target(name: "BerthServer", dependencies: [
            "BerthAudit", "BerthCore", "BerthConfig", "BerthAuth", "BerthSSH", "BerthObservability", "BerthDocker", "BerthSecurity", "BerthSSHProxy",
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ]),
        .executableTarget(name: "berth", dependencies: [
            "BerthAudit", "BerthCore", "BerthConfig", "BerthServer", "BerthSSH", "BerthObservability",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ]),
        .executableTarget(name: "berth-example-webhook", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The guest agent: standard library and libc only, so it links statically.
        .executableTarget(name: "berth-agent", dependencies: ["BerthForwardProtocol"]),
        .testTarget(name: "BerthSSHTests", dependencies: [
            "BerthCore", "BerthConfig", "BerthSSH",
            .product(name: "NIOSSH", package: "swift-nio-ssh"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "BerthDockerTests", dependencies: [
            "BerthDocker",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .testTarget(name: "BerthCBORTests", dependencies: ["BerthCBOR"]),
        .testTarget(name: "BerthAuditTests", dependencies: ["BerthAudit", "BerthCBOR"]),
        .testTarget(name: "BerthForwardProtocolTests", dependencies: ["BerthForwardProtocol", "BerthCBOR"]),
        .testTarget(name: "BerthUnitTests", dependencies: [
            "BerthSecurity", "BerthCore", "BerthConfig", "BerthAuth", "BerthSSH", "BerthServer", "BerthObservability",
        ]),
    ]
)
