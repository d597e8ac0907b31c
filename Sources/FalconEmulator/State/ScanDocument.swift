/// A scan as seen by FQL filters and aggregations.
struct ScanDocument: Sendable {
    var id: String
    var cid: String
    var status: String
    var createdAt: Int
    var sequence: Int
    var sha256s: [String]
    /// Empty while the scan is in progress: verdicts are not visible yet.
    var verdicts: [String]
}
