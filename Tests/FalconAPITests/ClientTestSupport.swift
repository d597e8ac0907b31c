import FalconAPI
import FalconEmulator
import Foundation
import Logging
import TestSupport

let testCredentials = FalconCredentials(clientID: "0123456789abcdef0123456789abcdef", clientSecret: "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tXYZW")

/// A client against `emulator` with a manual clock, so retries and cooldowns cost no wall time.
func makeClient(
    _ emulator: FalconEmulator, clock: ManualFalconClock = ManualFalconClock(),
    cloud: FalconCloud = .us1, retry: RetryPolicy = RetryPolicy(), credentials: FalconCredentials = testCredentials
) throws -> HTTPFalconClient {
    let config = FalconClientConfiguration(
        credentials: credentials, cloud: cloud, baseURL: emulator.baseURL, requestTimeout: 20, retry: retry)
    return try HTTPFalconClient(configuration: config, clock: clock)
}

/// Runs `body` with a fresh emulator and client, always shutting both down.
func withClient<T>(
    configure: @escaping (inout EmulatorConfiguration) -> Void = { _ in },
    clock: ManualFalconClock = ManualFalconClock(), retry: RetryPolicy = RetryPolicy(),
    _ body: (HTTPFalconClient, FalconEmulator) async throws -> T
) async throws -> T {
    try await withEmulator(configure) { emulator in
        let client = try makeClient(emulator, clock: clock, retry: retry)
        do {
            let result = try await body(client, emulator)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }
}
