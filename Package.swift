// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "quickscan",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "quickscan", targets: ["quickscan"]),
        .executable(name: "quickscan-bench", targets: ["quickscan-bench"]),
        .library(name: "FalconAPI", targets: ["FalconAPI"]),
        .library(name: "FalconEmulator", targets: ["FalconEmulator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
    ],
    targets: [
        // C libraries, through small system library targets (apt: libsqlite3-dev, libssl-dev).
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypto", path: "Sources/CCrypto", providers: [.apt(["libssl-dev"])]),
        // Linux calls without a Swift face (openat2); header only, nothing to link.
        .systemLibrary(name: "CLinux", path: "Sources/CLinux"),
        .target(name: "Hashing", dependencies: ["CCrypto"]),
        .target(name: "SQLiteKit", dependencies: ["CSQLite"]),
        .target(
            name: "FalconAPI",
            dependencies: [
                "Hashing",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FalconEmulator",
            dependencies: [
                "Hashing",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "QuickScanWorker",
            dependencies: [
                "FalconAPI", "Hashing", "SQLiteKit", "CLinux",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "quickscan-bench",
            dependencies: [
                "QuickScanWorker", "FalconAPI",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "quickscan",
            dependencies: [
                "FalconAPI", "FalconEmulator", "Hashing", "QuickScanWorker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "TestSupport",
            dependencies: [
                "FalconAPI", "FalconEmulator",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "HashingTests", dependencies: ["Hashing"]),
        .testTarget(name: "SQLiteKitTests", dependencies: ["SQLiteKit", "TestSupport"]),
        .testTarget(
            name: "QuickScanWorkerTests",
            dependencies: [
                "QuickScanWorker", "SQLiteKit", "TestSupport", "FalconAPI", "FalconEmulator",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "FalconAPITests", dependencies: ["FalconAPI", "FalconEmulator", "TestSupport"]),
        .testTarget(
            name: "FalconEmulatorTests",
            dependencies: [
                "FalconEmulator", "TestSupport", "FalconAPI", "Hashing",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
