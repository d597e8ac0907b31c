import Foundation

/// How a file version is recognised: a replaced or modified file is a new version.
public struct FileIdentity: Sendable, Equatable, Hashable {
    public var inode: UInt64
    public var size: Int64
    public var mtimeNs: Int64
    public var ctimeNs: Int64

    public init(inode: UInt64, size: Int64, mtimeNs: Int64, ctimeNs: Int64) {
        self.inode = inode
        self.size = size
        self.mtimeNs = mtimeNs
        self.ctimeNs = ctimeNs
    }
}

/// How far the files of a run got (the live progress line).
public struct RunProgress: Sendable, Equatable, CustomStringConvertible {
    public var seen = 0, hashed = 0, uploaded = 0, inVolumes = 0, scanned = 0, disposed = 0, notScanned = 0

    public init(seen: Int = 0, hashed: Int = 0, uploaded: Int = 0, inVolumes: Int = 0, scanned: Int = 0, disposed: Int = 0, notScanned: Int = 0) {
        (self.seen, self.hashed, self.uploaded, self.inVolumes) = (seen, hashed, uploaded, inVolumes)
        (self.scanned, self.disposed, self.notScanned) = (scanned, disposed, notScanned)
    }

    public var description: String {
        "seen \(seen), hashed \(hashed), uploaded \(uploaded), in volumes \(inVolumes), scanned \(scanned), disposed \(disposed), not scanned \(notScanned)"
    }
}

/// One row of `files`.
public struct FileRecord: Sendable {
    public var id: Int64
    public var path: String
    public var inbox: String
    public var identity: FileIdentity
    public var state: FileState
    public var sha256: String?
    public var outcome: Outcome?
    public var reason: String?
    public var verdict: String?
    public var error: String?
    public var disposedTo: String?
    /// Why the file is not filed yet (a disposal that failed and is retried), if it is not.
    public var pendingReason: String?
    /// With custody: the worker's own copy of the bytes scanned (uploaded and filed from here).
    public var spoolPath: String?
}

/// One row of `samples`.
public struct SampleRecord: Sendable {
    public var sha256: String
    public var uploadedAt: Double?
    public var deletedAt: Double?
    public var verdict: String?
    public var error: String?
    public var scannedAt: Double?
    public var scanID: String?
    public var volumeID: Int64?
    public var attempts: Int
    /// The API that holds the upload (while `uploadedAt` is set).
    public var uploadAPI: ScanAPI = .quickscan
    /// The API that gave `verdict` (its mapping differs).
    public var verdictAPI: ScanAPI = .quickscan
    /// QuickScan Pro's details of the verdict; nil for legacy verdicts.
    public var details: ScanDetails?
}

/// What QuickScan Pro says about a verdict beyond the verdict itself (the `results` view's
/// `verdict_reason`, `malicious_confidence` and `file_type`; `json` holds MITRE ATT&CK, YARA,
/// artifacts and the rest for `results --details`).
public struct ScanDetails: Sendable, Equatable {
    public var verdictReason: String?
    public var maliciousConfidence: Int?
    public var fileType: String?
    public var json: String?

    public init(verdictReason: String? = nil, maliciousConfidence: Int? = nil, fileType: String? = nil, json: String? = nil) {
        self.verdictReason = verdictReason
        self.maliciousConfidence = maliciousConfidence
        self.fileType = fileType
        self.json = json
    }

    /// Nil when nothing is set (legacy verdicts).
    public var nonEmpty: ScanDetails? {
        verdictReason == nil && maliciousConfidence == nil && fileType == nil && json == nil ? nil : self
    }
}

/// One row of `volumes`.
public struct VolumeRecord: Sendable {
    public var id: Int64
    public var state: VolumeState
    public var scanID: String?
    public var intentAt: Double
    public var submittedAt: Double?
    public var attempt: Int
}

/// A transition that found the row in another state (someone else moved it, or a bug).
public struct StaleTransition: Error, CustomStringConvertible {
    public let entity: String
    public let id: String
    public let expected: String
    public var description: String { "\(entity) \(id) was not in state \(expected)" }
}

/// A file version hashed before its first record.
/// With custody, `spool` is the worker's own spool file that was hashed (and will be uploaded
/// and filed); `taken` when its inbox name is gone already (taken by link), else the original
/// is removed from the inbox once this is recorded.
public typealias HashedFile = (path: String, inbox: String, identity: FileIdentity, sha256: String, spool: String?, taken: Bool)
/// A file version recorded as not scanned at once, with why.
public typealias UnscannableFile = (path: String, inbox: String, identity: FileIdentity, reason: NotScannedReason, error: String)
