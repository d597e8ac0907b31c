import FalconEmulator
import TestSupport

/// The worker's tests run against an emulator that scans every content type: their inboxes
/// are plain text, which the real scanner (and the emulator's default) answers `unknown`.
/// The tests of that default live with the emulator and in `UnacceptedTypeTests`.
func withEmulator<T>(
    isolation: isolated (any Actor)? = #isolation,
    _ configure: (inout EmulatorConfiguration) -> Void = { _ in },
    _ body: (FalconEmulator) async throws -> T
) async throws -> T {
    try await TestSupport.withEmulator(isolation: isolation, {
        $0.unacceptedTypeBehaviour = .scan
        configure(&$0)
    }, body)
}
