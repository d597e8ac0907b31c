/// One `msa.APIError`: `{code, message[, id]}`.
struct APIError: Sendable {
    var code: Int
    var message: String
    var id: String?

    var json: JSONValue {
        var members = [JSONMember(key: "code", value: .int(code)), JSONMember(key: "message", value: .string(message))]
        if let id { members.append(JSONMember(key: "id", value: .string(id))) }
        return .object(members)
    }
}

/// The Falcon envelope before its `meta` is filled in (query time, trace id and quota are
/// added by ``EmulatorResponder`` when the response leaves).
struct Envelope: Sendable {
    /// `meta.powered_by`.
    var poweredBy: String
    var errors: [APIError] = []
    /// Nil for `msa.ReplyMetaOnly`, which has no `resources` key (§3.1).
    var resources: [JSONValue]?
    /// Adds `meta.quota` (`mlscannerapi.MetaInfo`, every Quick Scan body).
    var includesQuota = false
    /// `meta.pagination`.
    var pagination: JSONValue?
    /// QuickScan Pro's `QuotaResource` for this CID, in `meta` and/or at the top level
    /// (``EmulatorConfiguration/proQuotaPlacement``).
    var proQuotaCID: String?
}

/// `meta.powered_by` values. The sheet observed `crowdstrike-api-gateway` (401s), `csam`
/// (token errors) and `falconx-api`; the scanner's own value is unknown (open question 11).
enum PoweredBy {
    static let gateway = "crowdstrike-api-gateway"
    static let oauth2 = "csam"
    static let samples = "falconx-api"
    static let scanner = "mlscannerapi"
    static let quickScanPro = "quickscanpro"
}
