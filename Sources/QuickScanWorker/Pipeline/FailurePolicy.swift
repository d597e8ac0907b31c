import FalconAPI
import Foundation
import Logging
import SQLiteKit

/// What an error means for the worker, decided from the error alone (pure, table-tested).
public enum FailureTriage: Sendable, Equatable {
    /// Bad configuration or refused credentials: nothing will work until a person acts (exit 3).
    case configuration
    /// The database is unusable, an I/O error, a bug: stop so a supervisor restarts us (exit 6).
    case internalError
    /// The API's rate limit: wait until the shared cooldown ends (deferred, not a failure).
    case rateLimited(until: Double?)
    /// A 5xx, a dropped connection, a malformed reply: retried; counts toward the streak.
    case transient
    /// A fault of one file (its read, upload or move): that file is marked, the rest go on.
    case fileProblem

    public static func of(_ error: any Error) -> FailureTriage {
        switch error {
        case let error as FalconError:
            switch error.kind {
            case .configuration, .authentication: return .configuration
            case .transport where error.operation == "oauth2AccessToken": return .configuration
            case .rateLimited: return .rateLimited(until: error.retryAfter)
            case .localFile: return .fileProblem
            case .http, .transport, .decoding: return .transient
            }
        case is ConfigurationError: return .configuration
        case is FileSystemError, is FileMover.Failure: return .fileProblem
        case let failure as WorkerFailure: return failure.kind == .configuration ? .configuration : .internalError
        default: return .internalError  // SQLiteError, StaleTransition, anything unexpected
        }
    }

    /// Seconds before a file whose disposal (or read) failed `attempt` times is tried again in
    /// watch mode: 5 s doubling to 10 minutes.
    public static func retryDelay(attempt: Int) -> Double {
        min(600, 5 * pow(2, Double(max(0, attempt - 1))))
    }
}

/// A failure that stops the worker, with the exit code it ends with.
public struct WorkerFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable { case configuration, internalError }
    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// README's exit codes: 3 configuration or credentials, 6 internal error.
    public var exitCode: Int32 { kind == .configuration ? 3 : 6 }
    public var description: String { kind == .configuration ? message : "internal error: \(message)" }
}

/// The one owner of the worker's failure state: the API failure streak, why the run is
/// deferred, the rate-limit cooldown, and which files wait before they are tried again.
/// Every error of every stage goes through it.
public actor FailurePolicy {
    /// In `--once` mode, this many API failures in a row end the run as deferred (exit 4).
    public static let streakLimit = 5

    let store: WorkerStore
    let rateLimit: RateLimitGate
    let clock: any FalconClock
    let logger: Logger
    /// True in `--once` mode: a file that failed is not tried again in the same run.
    let once: Bool

    /// API calls that failed in a row (after the client's own retries); reset by any success.
    public private(set) var streak = 0
    /// Why the run stops taking on work (quota used up, rate limited, too many failures).
    public private(set) var deferral: String?
    /// Files that failed, by file id: attempts so far, when to try again, and why.
    private var waiting: [Int64: (attempts: Int, notBefore: Double, reason: String)] = [:]
    /// Failures counted per key (a sample's uploads), so a stage can give up after N.
    private var counts: [String: Int] = [:]

    public init(store: WorkerStore, rateLimit: RateLimitGate, clock: any FalconClock, logger: Logger, once: Bool) {
        self.store = store
        self.rateLimit = rateLimit
        self.clock = clock
        self.logger = logger
        self.once = once
    }

    private var now: Double { clock.now().timeIntervalSince1970 }

    // MARK: API calls

    public func apiSucceeded() { streak = 0 }

    /// Handles a failed API call: throws a `WorkerFailure` when the worker must stop; records
    /// the cooldown of a 429; counts anything else toward the streak. The caller then leaves
    /// its work for the next pass.
    public func apiFailed(_ error: any Error, during operation: String) async throws {
        switch FailureTriage.of(error) {
        case .configuration:
            throw WorkerFailure(.configuration, "\(error)")
        case .internalError:
            throw WorkerFailure(.internalError, "\(error)")
        case .rateLimited(let until):
            // Not a failure of the API: a 429 does not count toward the streak anywhere.
            deferral = deferral ?? "rate limited by the API until \(until.map { Date(timeIntervalSince1970: $0).description } ?? "later")"
            if let until {
                await rateLimit.coolDown(until: until)
                try await store.setValue("rate_limit_cooldown_until", String(until))
            }
            logger.warning("rate limited; work waits for the cooldown", metadata: ["operation": "\(operation)", "error": "\(error)"])
        case .transient, .fileProblem:
            streak += 1
            logger.warning("API call failed; retried later", metadata: ["operation": "\(operation)", "error": "\(error)", "failure.streak": "\(streak)"])
            if once && streak >= Self.streakLimit {
                deferral = deferral ?? "the Falcon API failed \(streak) times in a row"
            }
        }
    }

    /// Any other error out of a stage: stops the worker unless it concerns one file.
    public func stageFailed(_ error: any Error) throws {
        switch FailureTriage.of(error) {
        case .configuration: throw WorkerFailure(.configuration, "\(error)")
        case .internalError: throw WorkerFailure(.internalError, "\(error)")
        default: logger.warning("stage step failed; retried on the next pass", metadata: ["error": "\(error)"])
        }
    }

    // MARK: deferral

    /// The run stops taking on work for `reason` (quota used up, a refusal that may pass).
    public func deferWork(_ reason: String) {
        if deferral == nil { logger.warning("work deferred", metadata: ["reason": "\(reason)"]) }
        deferral = deferral ?? reason
    }

    /// Watch mode: every pass tries again.
    public func clearDeferral() { deferral = nil }

    // MARK: files

    /// One file failed (its read, upload or move): it is marked with the reason in the store
    /// (status, results and history show it) and waits before it is tried again.
    public func fileFailed(_ id: Int64, path: String, reason: String) async throws {
        let attempts = (waiting[id]?.attempts ?? 0) + 1
        let delay = FailureTriage.retryDelay(attempt: attempts)
        waiting[id] = (attempts, now + delay, reason)
        logger.error("file not filed; retried later", metadata: [
            "file.path": "\(path)", "error": "\(reason)", "retry.attempt": "\(attempts)", "retry.in_seconds": "\(Int(delay))",
        ])
        try await store.notePending(id, reason: reason)
    }

    /// Whether a file that failed may be tried now (always, for a file that never failed).
    public func mayTry(_ id: Int64) -> Bool {
        guard let entry = waiting[id] else { return true }
        return !once && now >= entry.notBefore
    }

    /// The file got through: its retry state goes.
    public func fileRecovered(_ id: Int64) { waiting[id] = nil }

    /// Files waiting after a failure, with why (a `--once` run that only has these left ends
    /// deferred).
    public var filesWaiting: [Int64: String] { waiting.mapValues(\.reason) }

    /// Forgets retry state for files no longer pending (watch mode stays flat over months).
    public func prune(keeping pending: Set<Int64>) {
        waiting = waiting.filter { pending.contains($0.key) }
    }

    /// Counts one more failure for `key` and returns the count.
    public func countFailure(_ key: String) -> Int {
        counts[key, default: 0] += 1
        return counts[key]!
    }

    public func resetFailures(_ key: String) { counts[key] = nil }
}
