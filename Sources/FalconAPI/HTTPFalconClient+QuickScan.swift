import AsyncHTTPClient
import Foundation

/// Sort order of QuerySubmissionsMixin0.
public enum SubmissionSort: String, Sendable, CaseIterable {
    case asc, desc
}

extension HTTPFalconClient {
    /// ScanSamples: starts one volume over already uploaded samples; returns the scan id.
    ///
    /// Not idempotent (it spends quota, and the API has no idempotency key): a failure with
    /// `mayHaveTakenEffect` must be reconciled (QuerySubmissions + GetScans) before repeating.
    public func scanSamples(_ sha256s: [String]) async throws(FalconError) -> (scanID: String, response: FalconResponse<String>) {
        struct Body: Encodable { var samples: [String] }
        let request = FalconRequest(
            operation: "ScanSamples", method: .POST, path: "/scanner/entities/scans/v1", idempotent: false,
            contentType: "application/json", body: FalconRequest.json(Body(samples: sha256s.map { $0.lowercased() })))
        let reply = try await send(request)
        let response = try decode(reply, as: String.self, operation: "ScanSamples")
        guard let id = response.resources.first, !id.isEmpty else {
            throw FalconError(kind: .decoding, message: "ScanSamples reply carries no scan id", operation: "ScanSamples",
                              status: reply.status, apiErrors: response.errors, traceID: response.traceID, mayHaveTakenEffect: true)
        }
        return (id, response)
    }

    /// GetScans for many volumes in one call (`ids=a&ids=b`); with no ids it returns only
    /// `meta.quota`. Scans still in progress may be missing from `resources`.
    ///
    /// A 404 (some or all ids unknown) is not an error: the swagger gives it the same
    /// `ScanV1Response` model (reference §5.2), so the scans it did find are returned, with
    /// `status` 404 and the API's `errors[]`.
    public func getScans(ids: [String]) async throws(FalconError) -> FalconResponse<ScanResult> {
        let request = FalconRequest(
            operation: "GetScans", method: .GET, path: "/scanner/entities/scans/v1",
            query: ids.map { ("ids", $0) }, idempotent: true, returnedStatuses: ids.isEmpty ? [] : [404])
        do {
            let reply = try await send(request)
            return try decode(reply, as: ScanResult.self, operation: "GetScans")
        } catch where error.status == 404 && !ids.isEmpty {
            // A 404 without a readable body: nothing was found.
            return FalconResponse(resources: [], meta: FalconMeta(), errors: error.apiErrors, status: 404, traceID: error.traceID, rawBody: [])
        }
    }

    /// The Quick Scan quota (`meta.quota` of GetScans without ids).
    public func quota() async throws(FalconError) -> (quota: QuickScanQuota?, response: FalconResponse<ScanResult>) {
        let response = try await getScans(ids: [])
        return (response.meta.quota, response)
    }

    /// QuerySubmissionsMixin0: volume ids matching an FQL filter, with paging.
    public func querySubmissions(
        filter: String? = nil, offset: String? = nil, limit: Int? = nil, sort: SubmissionSort? = nil
    ) async throws(FalconError) -> FalconResponse<String> {
        if let limit, !(1...5000).contains(limit) {
            throw FalconError(kind: .configuration, message: "limit \(limit) is outside 1…5000", operation: "QuerySubmissionsMixin0")
        }
        var query: [(String, String)] = []
        if let filter, !filter.isEmpty { query.append(("filter", filter)) }
        if let offset, !offset.isEmpty { query.append(("offset", offset)) }
        if let limit { query.append(("limit", String(limit))) }
        if let sort { query.append(("sort", sort.rawValue)) }
        let request = FalconRequest(
            operation: "QuerySubmissionsMixin0", method: .GET, path: "/scanner/queries/scans/v1", query: query, idempotent: true)
        let reply = try await send(request)
        return try decode(reply, as: String.self, operation: "QuerySubmissionsMixin0")
    }

    /// GetScansAggregates with one `msa.AggregateQueryRequest` body.
    public func getScansAggregates(_ query: AggregateQuery) async throws(FalconError) -> FalconResponse<AggregationResult> {
        try await getScansAggregates(body: JSONEncoder.falcon.encodeOrEmpty(query))
    }

    /// GetScansAggregates with a raw JSON body (the CLI's `--body`).
    public func getScansAggregates(body: Data) async throws(FalconError) -> FalconResponse<AggregationResult> {
        let bytes = body
        let request = FalconRequest(
            operation: "GetScansAggregates", method: .POST, path: "/scanner/aggregates/scans/GET/v1", idempotent: true,
            contentType: "application/json", body: { .bytes(bytes) })
        let reply = try await send(request)
        return try decode(reply, as: AggregationResult.self, operation: "GetScansAggregates")
    }
}

extension JSONEncoder {
    func encodeOrEmpty<T: Encodable>(_ value: T) -> Data {
        (try? encode(value)) ?? Data("{}".utf8)
    }
}
