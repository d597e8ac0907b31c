/// What the worker needs of the Falcon API: Sample Uploads and the Quick Scan operations.
/// `HTTPFalconClient` speaks it over HTTP; tests may put a double in its place.
public protocol FalconClient: Sendable {
    /// The rate-limit state every request honours (the cooldown after a 429).
    var rateLimit: RateLimitGate { get }
    func uploadSample(path: String, fileName: String?, comment: String?, isConfidential: Bool, expectedSHA256: String?) async throws(FalconError) -> UploadResult
    @discardableResult
    func deleteSample(sha256: String) async throws(FalconError) -> FalconResponse<String>
    func scanSamples(_ sha256s: [String]) async throws(FalconError) -> (scanID: String, response: FalconResponse<String>)
    func getScans(ids: [String]) async throws(FalconError) -> FalconResponse<ScanResult>
    func quota() async throws(FalconError) -> (quota: QuickScanQuota?, response: FalconResponse<ScanResult>)
    func querySubmissions(filter: String?, offset: String?, limit: Int?, sort: SubmissionSort?) async throws(FalconError) -> FalconResponse<String>
    /// Revokes the token (best effort).
    func shutdown() async
}

extension HTTPFalconClient: FalconClient {}
