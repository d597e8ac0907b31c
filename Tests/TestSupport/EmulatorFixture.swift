import FalconEmulator
import Logging

/// Runs `body` against a ``FalconEmulator`` on an ephemeral loopback port, and always shuts it
/// down afterwards, whether `body` returns or throws.
///
/// `configure` starts from the defaults (port 0 on 127.0.0.1). The emulator logs errors only
/// (violations are logged as warnings, and many tests provoke them on purpose); read them from
/// ``FalconEmulator/violations``.
public func withEmulator<T>(
    isolation: isolated (any Actor)? = #isolation,
    _ configure: (inout EmulatorConfiguration) -> Void = { _ in },
    _ body: (FalconEmulator) async throws -> T
) async throws -> T {
    var configuration = EmulatorConfiguration()
    configuration.host = "127.0.0.1"
    configuration.port = 0
    configure(&configuration)
    var logger = Logger(label: "falcon-emulator.test")
    logger.logLevel = .error
    let emulator = FalconEmulator(configuration: configuration, logger: logger)
    try await emulator.start()
    do {
        let result = try await body(emulator)
        await emulator.shutdown()
        return result
    } catch {
        await emulator.shutdown()
        throw error
    }
}
