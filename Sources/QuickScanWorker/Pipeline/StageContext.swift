import FalconAPI
import Foundation
import Logging

/// What every stage is given: the settings, the store, the API, the file system, the failure
/// policy, the clock and the log. All `let`: a stage's own state, if any, is its own.
public struct StageContext: Sendable {
    public let config: WorkerConfiguration
    public let store: WorkerStore
    public let client: any FalconClient
    public let fs: any FileSystem
    public let policy: FailurePolicy
    public let clock: any FalconClock
    public let logger: Logger
    public let hooks: PipelineHooks
    public let metrics: WorkerMetrics

    /// Epoch seconds from the injected clock.
    public func now() -> Double { clock.now().timeIntervalSince1970 }
}

/// Points where tests change files under the pipeline (vanish, grow, truncate).
public struct PipelineHooks: Sendable {
    public var beforeHash: (@Sendable (String) -> Void)?
    public var afterHash: (@Sendable (String) -> Void)?
    public var beforeDisposal: (@Sendable (String) -> Void)?
    public init() {}
}
