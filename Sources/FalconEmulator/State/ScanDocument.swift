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

extension ScanDocument: FQLDocument {
    func fqlStrings(_ field: String) -> [String] {
        switch field {
        case "id": return [id]
        case "cid": return [cid]
        case "status": return [status]
        case "samples.sha256": return sha256s
        case "samples.verdict": return verdicts
        default: return []
        }
    }

    func fqlTime(_ field: String) -> Double? {
        field == "created_timestamp" ? Double(createdAt) : nil
    }

    func fqlNumber(_ field: String) -> Double? {
        field == "samples_count" ? Double(sha256s.count) : nil
    }
}
