/// The Falcon API operations the emulator serves, named by their swagger operation ids.
public enum FalconOperation: String, Sendable, CaseIterable {
    case oauth2AccessToken
    case oauth2RevokeToken
    case uploadSampleV3 = "UploadSampleV3"
    case getSampleV3 = "GetSampleV3"
    case deleteSampleV3 = "DeleteSampleV3"
    case scanSamples = "ScanSamples"
    case getScans = "GetScans"
    case querySubmissionsMixin0 = "QuerySubmissionsMixin0"
    case getScansAggregates = "GetScansAggregates"
    /// QuickScan Pro (quickscan-pro.md §1); the upload goes by FalconPy's operation id.
    case uploadFileQuickScanPro = "UploadFileQuickScanPro"
    case launchScan = "LaunchScan"
    case getScanResult = "GetScanResult"
    case deleteScanResult = "DeleteScanResult"
    case deleteFile = "DeleteFile"
    case queryScanResults = "QueryScanResults"

    /// The HTTP method of the operation.
    public var method: String {
        switch self {
        case .oauth2AccessToken, .oauth2RevokeToken, .uploadSampleV3, .scanSamples, .getScansAggregates,
             .uploadFileQuickScanPro, .launchScan: return "POST"
        case .getSampleV3, .getScans, .querySubmissionsMixin0, .getScanResult, .queryScanResults: return "GET"
        case .deleteSampleV3, .deleteScanResult, .deleteFile: return "DELETE"
        }
    }

    /// The request path.
    public var path: String {
        switch self {
        case .oauth2AccessToken: return "/oauth2/token"
        case .oauth2RevokeToken: return "/oauth2/revoke"
        case .uploadSampleV3, .getSampleV3, .deleteSampleV3: return "/samples/entities/samples/v3"
        case .scanSamples, .getScans: return "/scanner/entities/scans/v1"
        case .querySubmissionsMixin0: return "/scanner/queries/scans/v1"
        case .getScansAggregates: return "/scanner/aggregates/scans/GET/v1"
        case .uploadFileQuickScanPro, .deleteFile: return "/quickscanpro/entities/files/v1"
        case .launchScan, .getScanResult, .deleteScanResult: return "/quickscanpro/entities/scans/v1"
        case .queryScanResults: return "/quickscanpro/queries/scans/v1"
        }
    }

    /// True for the OAuth2 endpoints, which need no bearer token and which fault rules skip
    /// unless a rule names them.
    public var isOAuth2: Bool {
        self == .oauth2AccessToken || self == .oauth2RevokeToken
    }

    /// The operations served on `path`, or an empty list for an unknown path.
    static func operations(onPath path: String) -> [FalconOperation] {
        allCases.filter { $0.path == path }
    }

    /// True for the six QuickScan Pro operations (`/quickscanpro/*`).
    public var isQuickScanPro: Bool {
        path.hasPrefix("/quickscanpro/")
    }

    /// Other names of the upload: gofalcon's and the older entry FalconPy keeps (quickscan-pro.md §1).
    static let aliases: [String: FalconOperation] = [
        "uploadfilemixin0mixin93": .uploadFileQuickScanPro,
        "uploadfilemixin0mixin94": .uploadFileQuickScanPro,
    ]

    /// Case-insensitive lookup by operation id (or an alias).
    static func named(_ name: String) -> FalconOperation? {
        allCases.first { $0.rawValue.lowercased() == name.lowercased() } ?? aliases[name.lowercased()]
    }
}
