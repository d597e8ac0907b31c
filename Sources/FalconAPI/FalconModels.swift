import Foundation

/// `meta.quota` of Quick Scan replies (`mlscannerapi.MetaInfo`): the scan quota.
public struct QuickScanQuota: Codable, Sendable, Equatable {
    public var total: Int
    public var used: Int
    public var inProgress: Int

    public init(total: Int, used: Int, inProgress: Int) {
        self.total = total
        self.used = used
        self.inProgress = inProgress
    }

    /// What is still available, never negative: `total − used − in_progress`. The unit (files,
    /// volumes, bytes) and period are undocumented (falcon-api.md §9), so nothing here assumes
    /// it counts samples; scans in progress are taken off because they may not be in `used` yet.
    public var remaining: Int { max(0, total - used - inProgress) }

    enum CodingKeys: String, CodingKey {
        case total, used
        case inProgress = "in_progress"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        total = c.lenientInt(.total) ?? 0
        used = c.lenientInt(.used) ?? 0
        inProgress = c.lenientInt(.inProgress) ?? 0
    }
}

/// `meta.pagination` (`msa.Paging`).
public struct FalconPagination: Codable, Sendable, Equatable {
    public var offset: Int?
    public var limit: Int?
    public var total: Int?

    enum CodingKeys: String, CodingKey { case offset, limit, total }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        offset = c.lenientInt(.offset)
        limit = c.lenientInt(.limit)
        total = c.lenientInt(.total)
    }
}

/// The `meta` object of every reply; every field optional (lenient, reference §5.8).
public struct FalconMeta: Codable, Sendable {
    public var queryTime: Double?
    public var traceID: String?
    public var poweredBy: String?
    public var quota: QuickScanQuota?
    public var pagination: FalconPagination?

    public init() {}

    enum CodingKeys: String, CodingKey {
        case queryTime = "query_time"
        case traceID = "trace_id"
        case poweredBy = "powered_by"
        case quota, pagination
    }

    /// QuickScan Pro's swagger nests `msa.MetaInfo` as `MetaInfo` (quickscan-pro.md §3).
    private enum NestedKeys: String, CodingKey {
        case nested = "MetaInfo"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        queryTime = try? c.decodeIfPresent(Double.self, forKey: .queryTime)
        traceID = try? c.decodeIfPresent(String.self, forKey: .traceID)
        poweredBy = try? c.decodeIfPresent(String.self, forKey: .poweredBy)
        quota = try? c.decodeIfPresent(QuickScanQuota.self, forKey: .quota)
        pagination = try? c.decodeIfPresent(FalconPagination.self, forKey: .pagination)
        // Read through a nested `MetaInfo` for whatever the flat form left out.
        // Lenient like the fields above (reference §2: MetaInfo's shape varies by operation).
        if let outer = try? decoder.container(keyedBy: NestedKeys.self),
           let nested = (try? outer.decodeIfPresent(FalconMeta.self, forKey: .nested)) ?? nil {
            queryTime = queryTime ?? nested.queryTime
            traceID = traceID ?? nested.traceID
            poweredBy = poweredBy ?? nested.poweredBy
            quota = quota ?? nested.quota
            pagination = pagination ?? nested.pagination
        }
    }
}

/// The envelope `{meta, errors, resources}` of every JSON reply.
struct FalconEnvelope<Resource: Decodable>: Decodable {
    var meta: FalconMeta
    var errors: [FalconAPIErrorItem]
    var resources: [Resource]
    /// QuickScan Pro's top-level `quota` (quickscan-pro.md §3).
    var quota: QuickScanQuota?

    enum CodingKeys: String, CodingKey { case meta, errors, resources, quota }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        meta = (try? c.decodeIfPresent(FalconMeta.self, forKey: .meta)) ?? FalconMeta()
        quota = (try? c.decodeIfPresent(QuickScanQuota.self, forKey: .quota)) ?? nil
        errors = (try? c.decodeIfPresent([FalconAPIErrorItem].self, forKey: .errors)) ?? []
        // `resources` may be absent (ReplyMetaOnly) or null; elements must decode.
        resources = try c.decodeIfPresent([Resource].self, forKey: .resources) ?? []
    }
}

/// A successful reply: the decoded resources, the meta, and the raw JSON body for `--json`.
public struct FalconResponse<Resource: Sendable>: Sendable {
    public var resources: [Resource]
    public var meta: FalconMeta
    public var errors: [FalconAPIErrorItem]
    public var status: Int
    public var traceID: String?
    /// The body exactly as the API sent it.
    public var rawBody: [UInt8]

    public init(resources: [Resource], meta: FalconMeta, errors: [FalconAPIErrorItem], status: Int, traceID: String?, rawBody: [UInt8]) {
        self.resources = resources
        self.meta = meta
        self.errors = errors
        self.status = status
        self.traceID = traceID
        self.rawBody = rawBody
    }
}

/// One uploaded sample (`resources[]` of UploadSampleV3).
public struct UploadedSample: Codable, Sendable, Equatable {
    public var sha256: String
    public var fileName: String?

    enum CodingKeys: String, CodingKey {
        case sha256
        case fileName = "file_name"
    }
}

/// One sample of a scan (`mlscannerapi.ScannedSample`); verdict and error kept as raw strings.
public struct ScannedSample: Codable, Sendable, Equatable {
    public var sha256: String
    public var verdict: String?
    public var error: String?

    public init(sha256: String, verdict: String? = nil, error: String? = nil) {
        self.sha256 = sha256
        self.verdict = verdict
        self.error = error
    }

    enum CodingKeys: String, CodingKey { case sha256, verdict, error }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        sha256 = ((try? c.decodeIfPresent(String.self, forKey: .sha256)) ?? nil)?.lowercased() ?? ""
        verdict = (try? c.decodeIfPresent(String.self, forKey: .verdict)) ?? nil
        error = (try? c.decodeIfPresent(String.self, forKey: .error)) ?? nil
    }
}

/// A scan (volume) as GetScans returns it (`mlscannerapi.SamplesScanResult`).
public struct ScanResult: Codable, Sendable, Equatable {
    public var id: String
    public var cid: String?
    /// Raw status; only `done` is known to be terminal (reference §5.2).
    public var status: String
    public var createdTimestamp: String?
    public var samples: [ScannedSample]

    public init(id: String, cid: String? = nil, status: String, createdTimestamp: String? = nil, samples: [ScannedSample]) {
        self.id = id
        self.cid = cid
        self.status = status
        self.createdTimestamp = createdTimestamp
        self.samples = samples
    }

    /// True when the volume finished: status `done` (case-insensitive).
    public var isDone: Bool { status.lowercased() == "done" }

    /// True when the status is clearly a failure (`failed`, `error`, `canceled`/`cancelled`,
    /// case-insensitive). Only `done` is documented (reference §5.2, open question 1): any
    /// other status means "keep polling", up to the caller's time cap.
    public var isFailed: Bool { isFailureStatus(status) }

    enum CodingKeys: String, CodingKey {
        case id, cid, status, samples
        case createdTimestamp = "created_timestamp"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        cid = (try? c.decodeIfPresent(String.self, forKey: .cid)) ?? nil
        status = ((try? c.decodeIfPresent(String.self, forKey: .status)) ?? nil) ?? ""
        createdTimestamp = (try? c.decodeIfPresent(String.self, forKey: .createdTimestamp)) ?? nil
        samples = ((try? c.decodeIfPresent([ScannedSample].self, forKey: .samples)) ?? nil) ?? []
    }
}

/// `failed`, `error`, `canceled` or `cancelled`, case-insensitive and trimmed.
func isFailureStatus(_ status: String) -> Bool {
    ["failed", "error", "canceled", "cancelled"].contains(status.trimmingCharacters(in: .whitespaces).lowercased())
}

extension KeyedDecodingContainer {
    /// An integer sent as a number or a numeric string (reference: offset is a string).
    func lenientInt(_ key: Key) -> Int? {
        if let v = try? decodeIfPresent(Int.self, forKey: key) { return v }
        if let v = try? decodeIfPresent(Double.self, forKey: key) { return Int(v) }
        if let s = try? decodeIfPresent(String.self, forKey: key) { return Int(s) }
        return nil
    }
}
