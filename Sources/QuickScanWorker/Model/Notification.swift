import Foundation

/// One notification due on one channel: the decision as recorded in the same transaction as
/// the verdict. `id` is the same on every delivery attempt (and after a crash).
public struct PendingNotification: Sendable, Equatable {
    /// The outbox row.
    public var row: Int64
    /// Stable across redeliveries: receivers deduplicate on it.
    public var id: String
    public var channel: String
    public var fileID: Int64
    public var path: String
    public var sha256: String?
    public var outcome: Outcome
    public var verdict: String?
    public var reason: String?
    public var error: String?
    public var scanID: String?
    public var decidedAt: Double
    /// Where the file was filed, once it was (nil while pending, or left in place).
    public var destination: String?
    /// Attempts before this one.
    public var attempts: Int
}

/// An undelivered notification, as `status` shows it.
public struct UndeliveredNotification: Sendable, Equatable {
    public var id: String
    public var channel: String
    public var path: String
    public var outcome: String
    public var attempts: Int
    public var nextAttemptAt: Double
    public var lastError: String?
}
