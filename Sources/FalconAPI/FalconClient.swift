/// What the worker needs of the Falcon API: Sample Uploads, the Quick Scan operations and the
/// QuickScan Pro operations.
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

    // QuickScan Pro (`/quickscanpro/*`)
    func uploadQuickScanProFile(path: String, fileName: String?, scan: Bool, password: String?,
                                expectedSHA256: String?) async throws(FalconError) -> QuickScanProUploadResult
    func launchQuickScanProScan(sha256: String, password: String?) async throws(FalconError) -> (scanID: String, response: FalconResponse<QuickScanProLaunch>)
    func getQuickScanProResults(ids: [String]) async throws(FalconError) -> FalconResponse<QuickScanProScan>
    func queryQuickScanProResults(filter: String, offset: Int?, limit: Int?, sort: QuickScanProSort?) async throws(FalconError) -> FalconResponse<String>
    @discardableResult
    func deleteQuickScanProFiles(sha256s: [String]) async throws(FalconError) -> FalconResponse<String>
    @discardableResult
    func deleteQuickScanProResults(ids: [String]) async throws(FalconError) -> FalconResponse<String>
    /// Revokes the token (best effort).
    func shutdown() async
}

extension HTTPFalconClient: FalconClient {}
