/// Watches the client's HTTP exchanges (metrics): each reply or transport failure with its
/// latency, each retry and each 429. Called inline on the request path: keep it cheap.
public protocol FalconCallObserver: Sendable {
    /// One HTTP exchange ended: `status` is nil for a transport failure (no reply).
    func exchanged(operation: String, status: Int?, seconds: Double)
    /// The client repeats `operation` after a failure (not a re-authentication).
    func retrying(operation: String)
    /// The API answered 429 to `operation`.
    func rateLimited(operation: String)
}
