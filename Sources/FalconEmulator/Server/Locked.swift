import Foundation

/// A value behind a lock, so the emulator's synchronous accessors (`recorded`, `stats`, ...)
/// and its request handlers can share state without an actor hop.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) {
        self.value = value
    }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
