import Foundation

// Lenient decoding, on purpose: the QuickScan Pro fact sheet marks many fields as inferred
// ([INF]), so every field is read with `try?` and one of an unexpected type counts as absent.
// Nothing is trusted because of that: a missing verdict or status never reads as clean or
// done, and the caller fails closed on it (reference quickscan-pro.md; README mapping table).

/// A QuickScan Pro verdict (`quickscanpro.ScanResult.verdict`, quickscan-pro.md §3-§4).
///
/// The swagger enum is `clean | likely_benign | suspicious | malicious | unknown`. It is read
/// case-insensitively, with blanks as `_` (CrowdStrike's Lambda normalises the same way); any
/// other string is kept as ``other(_:)`` so the caller can fail closed on it.
public enum QuickScanProVerdict: Sendable, Hashable, Codable, CustomStringConvertible {
    case clean
    case likelyBenign
    case suspicious
    case malicious
    case unknown
    /// A string outside the enum, exactly as sent.
    case other(String)

    public init(rawValue: String) {
        switch rawValue.trimmingCharacters(in: .whitespaces).lowercased().replacingOccurrences(of: " ", with: "_") {
        case "clean": self = .clean
        case "likely_benign": self = .likelyBenign
        case "suspicious": self = .suspicious
        case "malicious": self = .malicious
        case "unknown": self = .unknown
        default: self = .other(rawValue)
        }
    }

    /// The wire spelling (the original string for ``other(_:)``).
    public var rawValue: String {
        switch self {
        case .clean: "clean"
        case .likelyBenign: "likely_benign"
        case .suspicious: "suspicious"
        case .malicious: "malicious"
        case .unknown: "unknown"
        case .other(let raw): raw
        }
    }

    public var description: String { rawValue }

    public init(from decoder: any Decoder) throws {
        self.init(rawValue: try decoder.singleValueContainer().decode(String.self))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(rawValue)
    }
}

/// One uploaded file (`quickscanpro.FileUploadResource`): its sha256, and the scan id when the
/// upload asked for `scan=true`.
public struct QuickScanProUpload: Codable, Sendable, Equatable {
    public var sha256: String
    public var scanID: String?

    public init(sha256: String, scanID: String? = nil) {
        self.sha256 = sha256
        self.scanID = scanID
    }

    enum CodingKeys: String, CodingKey {
        case sha256
        case scanID = "scan_id"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sha256 = ((try? c.decodeIfPresent(String.self, forKey: .sha256)) ?? nil)?.lowercased() ?? ""
        scanID = ((try? c.decodeIfPresent(String.self, forKey: .scanID)) ?? nil).flatMap { $0.isEmpty ? nil : $0 }
    }
}

/// What an upload sent and what the API answered.
public struct QuickScanProUploadResult: Sendable {
    /// The sha256 the API computed (the file id).
    public var sha256: String
    /// The scan started by the upload (`scan=true`), if any.
    public var scanID: String?
    /// Bytes of file content sent.
    public var size: Int64
    public var response: FalconResponse<QuickScanProUpload>
}

/// One scan started by LaunchScan (`quickscanpro.LaunchScanResource`).
public struct QuickScanProLaunch: Codable, Sendable, Equatable {
    /// The scan id (32 hex digits in PSFalcon's check).
    public var id: String
    public var sha256: String
    public var createdTimestamp: String?

    public init(id: String, sha256: String, createdTimestamp: String? = nil) {
        self.id = id
        self.sha256 = sha256
        self.createdTimestamp = createdTimestamp
    }

    enum CodingKeys: String, CodingKey {
        case id, sha256
        case createdTimestamp = "created_timestamp"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        sha256 = ((try? c.decodeIfPresent(String.self, forKey: .sha256)) ?? nil)?.lowercased() ?? ""
        createdTimestamp = (try? c.decodeIfPresent(String.self, forKey: .createdTimestamp)) ?? nil
    }
}

/// One entry of `scan.errors[]` (`quickscanpro.Error`: `code` is a string in the swagger; a
/// number is accepted too).
public struct QuickScanProScanError: Codable, Sendable, Equatable {
    public var code: String
    public var message: String

    public init(code: String, message: String) {
        self.code = code
        self.message = message
    }

    enum CodingKeys: String, CodingKey { case code, message }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let text = (try? c.decodeIfPresent(String.self, forKey: .code)) ?? nil {
            code = text
        } else {
            code = c.lenientInt(.code).map(String.init) ?? ""
        }
        message = ((try? c.decodeIfPresent(String.self, forKey: .message)) ?? nil) ?? ""
    }
}

/// `scan` of a GetScanResult resource (`quickscanpro.ScanMetadata`).
public struct QuickScanProScanMetadata: Codable, Sendable, Equatable {
    public var sha256: String
    /// Raw status; only `done` is known (quickscan-pro.md §4).
    public var status: String
    public var createdTimestamp: String?
    public var updatedTimestamp: String?
    public var errors: [QuickScanProScanError]

    public init(sha256: String, status: String, createdTimestamp: String? = nil, updatedTimestamp: String? = nil, errors: [QuickScanProScanError] = []) {
        self.sha256 = sha256
        self.status = status
        self.createdTimestamp = createdTimestamp
        self.updatedTimestamp = updatedTimestamp
        self.errors = errors
    }

    enum CodingKeys: String, CodingKey {
        case sha256, status, errors
        case createdTimestamp = "created_timestamp"
        case updatedTimestamp = "updated_timestamp"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sha256 = ((try? c.decodeIfPresent(String.self, forKey: .sha256)) ?? nil)?.lowercased() ?? ""
        status = ((try? c.decodeIfPresent(String.self, forKey: .status)) ?? nil) ?? ""
        createdTimestamp = (try? c.decodeIfPresent(String.self, forKey: .createdTimestamp)) ?? nil
        updatedTimestamp = (try? c.decodeIfPresent(String.self, forKey: .updatedTimestamp)) ?? nil
        errors = ((try? c.decodeIfPresent([QuickScanProScanError].self, forKey: .errors)) ?? nil) ?? []
    }
}

/// One member of `result.file_artifacts` (`quickscanpro.FileResult`).
public struct QuickScanProFileArtifact: Codable, Sendable, Equatable {
    public var sha256: String
    public var filename: String?
    public var verdict: QuickScanProVerdict?
    public var verdictReason: String?

    enum CodingKeys: String, CodingKey {
        case sha256, filename, verdict
        case verdictReason = "verdict_reason"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sha256 = ((try? c.decodeIfPresent(String.self, forKey: .sha256)) ?? nil)?.lowercased() ?? ""
        filename = (try? c.decodeIfPresent(String.self, forKey: .filename)) ?? nil
        verdict = (try? c.decodeIfPresent(QuickScanProVerdict.self, forKey: .verdict)) ?? nil
        verdictReason = (try? c.decodeIfPresent(String.self, forKey: .verdictReason)) ?? nil
    }
}

/// `result` of a GetScanResult resource (`quickscanpro.ScanResult`): the verdict and its
/// details. The open-ended parts (MITRE, YARA, URL artifacts, the artifact tree, malware
/// config) are kept as JSON, and ``raw`` holds the whole object as sent.
public struct QuickScanProResult: Codable, Sendable, Equatable {
    public var verdict: QuickScanProVerdict?
    public var verdictReason: String?
    public var verdictReasons: [String]
    public var verdictSource: [String]
    public var maliciousConfidence: Int?
    public var fileType: String?
    public var fileTypeShort: String?
    public var mimeType: String?
    public var fileSize: Int?
    public var fileArtifacts: [QuickScanProFileArtifact]
    public var urlArtifacts: JSONValue?
    public var mitreAttacks: JSONValue?
    public var yaraRules: JSONValue?
    public var artifactsTree: JSONValue?
    public var malwareFamilies: JSONValue?
    /// The whole `result` object.
    public var raw: JSONValue

    enum CodingKeys: String, CodingKey {
        case verdict
        case verdictReason = "verdict_reason"
        case verdictReasons = "verdict_reasons"
        case verdictSource = "verdict_source"
        case maliciousConfidence = "malicious_confidence"
        case fileType = "file_type"
        case fileTypeShort = "file_type_short"
        case mimeType = "mime_type"
        case fileSize = "file_size"
        case fileArtifacts = "file_artifacts"
        case urlArtifacts = "url_artifacts"
        case mitreAttacks = "mitre_attacks"
        case yaraRules = "yara_rules"
        case artifactsTree = "artifacts_tree"
        case malwareFamilies = "malware_families"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        verdict = (try? c.decodeIfPresent(QuickScanProVerdict.self, forKey: .verdict)) ?? nil
        verdictReason = (try? c.decodeIfPresent(String.self, forKey: .verdictReason)) ?? nil
        verdictReasons = ((try? c.decodeIfPresent([String].self, forKey: .verdictReasons)) ?? nil) ?? []
        verdictSource = ((try? c.decodeIfPresent([String].self, forKey: .verdictSource)) ?? nil) ?? []
        maliciousConfidence = c.lenientInt(.maliciousConfidence)
        fileType = (try? c.decodeIfPresent(String.self, forKey: .fileType)) ?? nil
        fileTypeShort = (try? c.decodeIfPresent(String.self, forKey: .fileTypeShort)) ?? nil
        mimeType = (try? c.decodeIfPresent(String.self, forKey: .mimeType)) ?? nil
        fileSize = c.lenientInt(.fileSize)
        fileArtifacts = ((try? c.decodeIfPresent([QuickScanProFileArtifact].self, forKey: .fileArtifacts)) ?? nil) ?? []
        urlArtifacts = (try? c.decodeIfPresent(JSONValue.self, forKey: .urlArtifacts)) ?? nil
        mitreAttacks = (try? c.decodeIfPresent(JSONValue.self, forKey: .mitreAttacks)) ?? nil
        yaraRules = (try? c.decodeIfPresent(JSONValue.self, forKey: .yaraRules)) ?? nil
        artifactsTree = (try? c.decodeIfPresent(JSONValue.self, forKey: .artifactsTree)) ?? nil
        malwareFamilies = (try? c.decodeIfPresent(JSONValue.self, forKey: .malwareFamilies)) ?? nil
        raw = (try? JSONValue(from: decoder)) ?? .object([:])
    }

    public func encode(to encoder: any Encoder) throws {
        try raw.encode(to: encoder)
    }
}

/// One resource of GetScanResult (`quickscanpro.GetScanResultResource`): the scan id, its
/// metadata, and its result once done.
public struct QuickScanProScan: Codable, Sendable, Equatable {
    /// The scan id.
    public var id: String
    public var scan: QuickScanProScanMetadata
    /// Nil while the scan runs (or when the API sends an empty object): read it only once
    /// ``isDone`` (quickscan-pro.md §3, GetScanResultResource).
    public var result: QuickScanProResult?

    enum CodingKeys: String, CodingKey { case id, scan, result }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        scan = ((try? c.decodeIfPresent(QuickScanProScanMetadata.self, forKey: .scan)) ?? nil)
            ?? QuickScanProScanMetadata(sha256: "", status: "")
        let decoded = (try? c.decodeIfPresent(QuickScanProResult.self, forKey: .result)) ?? nil
        result = decoded.flatMap { $0.raw == .object([:]) ? nil : $0 }
    }

    /// `scan.status` is `done` (case-insensitive): the only terminal status CrowdStrike's code knows.
    public var isDone: Bool { scan.status.lowercased() == "done" }

    /// Clearly failed: a failure status (`failed`, `error`, `canceled`/`cancelled`), or a status
    /// other than `done` with `scan.errors` (quickscan-pro.md §4: treat an unknown status with
    /// errors as a failure). A `done` scan with errors is not failed: read its verdict
    /// (unscannable files end `done` with `unknown` and an error).
    public var isFailed: Bool {
        !isDone && (isFailureStatus(scan.status) || !scan.errors.isEmpty)
    }

    /// The verdict once done (nil before, or when the API sent none).
    public var verdict: QuickScanProVerdict? { isDone ? result?.verdict : nil }
}
