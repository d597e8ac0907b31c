/// A ScanSamples volume.
struct ScanRecord: Sendable {
    var id: String
    var cid: String
    /// Precise creation time (Unix seconds), for ``EmulatorConfiguration/scanDurationSeconds``.
    var createdAt: Double
    /// Creation time as shown in `created_timestamp` (whole seconds) and used by FQL.
    var createdAtSeconds: Int
    var sequence: Int
    var samples: [ScannedSample]
    var pollsSeen = 0
    var done = false
}

/// The outcome of one sample in a volume, fixed when the volume is created.
struct ScannedSample: Sendable {
    var sha256: String
    var verdict: String
    var error: String?

    var json: JSONValue {
        var members = [JSONMember(key: "sha256", value: .string(sha256)), JSONMember(key: "verdict", value: .string(verdict))]
        if let error { members.append(JSONMember(key: "error", value: .string(error))) }
        return .object(members)
    }
}
