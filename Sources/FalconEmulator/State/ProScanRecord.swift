/// A file in QuickScan Pro's own store (quickscan-pro.md §2.1), kept per CID.
struct ProFileRecord: Sendable {
    var sha256: String
    var cid: String
    var fileName: String
    var size: Int
    var kind: SampleKind
    /// The first 16 bytes, for `first_content_bytes_hex` / `_ascii`.
    var firstBytes: [UInt8]
}

/// A QuickScan Pro scan: one per file (quickscan-pro.md §4).
struct ProScanRecord: Sendable {
    /// 32 hex digits (PSFalcon's check).
    var id: String
    var cid: String
    var file: ProFileRecord
    /// Precise creation time (Unix seconds), for ``EmulatorConfiguration/scanDurationSeconds``.
    var createdAt: Double
    var updatedAt: Double
    var sequence: Int
    var pollsSeen = 0
    var done = false
    /// Set when the file was not in the store (``EmulatorConfiguration/UnknownSampleBehaviour/unknownVerdict``).
    var fileMissing = false

    /// The verdict, its reason, the malicious confidence and the `scan.errors` of this scan.
    var outcome: (verdict: String, reason: String, confidence: Int, errors: [JSONValue]) {
        if fileMissing {
            return ("unknown", "file not found", 0, [["code": "file_not_found", "message": "file not found"]])
        }
        switch file.kind {
        case .eicar: return ("malicious", "EICAR anti-virus test file", 100, [])
        case .suspiciousMarker: return ("suspicious", "emulator suspicious marker", 60, [])
        case .likelyBenignMarker: return ("likely_benign", "emulator likely-benign marker", 10, [])
        case .image:
            return ("unknown", "unsupported file type", 0, [["code": "unsupported_file_type", "message": "unsupported file type: image"]])
        case .unknownMarker: return ("unknown", "emulator unknown marker", 0, [])
        case .clean: return ("clean", "no threat found", 0, [])
        }
    }

    /// The file type the pretend scanner reports.
    var fileType: (long: String, short: String, mime: String) {
        switch file.kind {
        case .image:
            return file.firstBytes.starts(with: SampleKind.pngMagic)
                ? ("PNG image data", "png", "image/png") : ("JPEG image data", "jpeg", "image/jpeg")
        case .eicar: return ("EICAR virus test files", "com", "application/octet-stream")
        default: return ("ASCII text", "txt", "text/plain")
        }
    }

    /// As QueryScanResults' FQL sees it.
    func document(done: Bool, inProgressStatus: String) -> ProScanDocument {
        let outcome = self.outcome
        return ProScanDocument(
            id: id, cid: cid, sha256: file.sha256, status: done ? "done" : inProgressStatus,
            verdict: done ? outcome.verdict : nil, verdictReason: done ? outcome.reason : nil,
            fileType: fileType, fileSize: file.size, createdAt: Int(createdAt.rounded(.down)),
            updatedAt: Int(updatedAt.rounded(.down)), sequence: sequence)
    }
}

/// A QuickScan Pro scan as FQL sees it.
struct ProScanDocument: Sendable, FQLDocument {
    var id: String
    var cid: String
    var sha256: String
    var status: String
    var verdict: String?
    var verdictReason: String?
    var fileType: (long: String, short: String, mime: String)
    var fileSize: Int
    var createdAt: Int
    var updatedAt: Int
    var sequence: Int

    /// The documented exact-match fields of QueryScanResults (quickscan-pro.md §2.4); those the
    /// emulator does not model (MITRE, YARA, artifacts…) are accepted and match nothing.
    static let fields: Set<String> = [
        "_all", "cid", "sha256", "id", "status", "type", "entity", "executor", "verdict", "verdict_reason",
        "verdict_reasons", "verdict_source", "file_size", "file_type", "mime_type", "adversary", "file_type_short",
        "first_content_bytes_hex", "first_content_bytes_ascii", "created_timestamp", "updated_timestamp",
        "artifacts.file_artifacts.sha256", "artifacts.file_artifacts.filename", "artifacts.file_artifacts.verdict",
        "artifacts.file_artifacts.verdict_reasons", "artifacts.url_artifacts.url", "artifacts.url_artifacts.verdict",
        "artifacts.url_artifacts.verdict_reasons", "mitre_attacks.attack_id", "mitre_attacks.attack_id_wiki",
        "mitre_attacks.tactic", "mitre_attacks.technique", "mitre_attacks.capec_id", "mitre_attacks.description",
        "mitre_attacks.parent.attack_id", "mitre_attacks.parent.attack_id_wiki", "mitre_attacks.parent.technique",
        "static_indicators", "malware_config.url", "malware_config.domain", "malware_config.ip",
        "yara_rules.rule_name", "yara_rules.sha256", "yara_rules.tags", "yara_rules.description",
        "yara_rules.created_at", "yara_rules.updated_at",
    ]

    func fqlStrings(_ field: String) -> [String] {
        switch field {
        case "id": return [id]
        case "cid": return [cid]
        case "sha256", "artifacts.file_artifacts.sha256": return [sha256]
        case "status": return [status]
        case "verdict", "artifacts.file_artifacts.verdict": return verdict.map { [$0] } ?? []
        case "verdict_reason", "verdict_reasons": return verdictReason.map { [$0] } ?? []
        case "file_type": return [fileType.long]
        case "file_type_short": return [fileType.short]
        case "mime_type": return [fileType.mime]
        case "_all": return [id, sha256, status, verdict ?? "", fileType.long]
        default: return []
        }
    }

    func fqlTime(_ field: String) -> Double? {
        switch field {
        case "created_timestamp": return Double(createdAt)
        case "updated_timestamp": return Double(updatedAt)
        default: return nil
        }
    }

    func fqlNumber(_ field: String) -> Double? {
        field == "file_size" ? Double(fileSize) : nil
    }
}
