import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sort order of QueryScanResults (`created_timestamp` is the only sort field, quickscan-pro.md §2.4).
public enum QuickScanProSort: String, Sendable, CaseIterable {
    case newestFirst = "created_timestamp.desc"
    case oldestFirst = "created_timestamp.asc"
}

/// The six QuickScan Pro operations (`/quickscanpro/*`, quickscan-pro.md §1-§5).
extension HTTPFalconClient {
    /// Ids per GetScanResult, DeleteFile and DeleteScanResult call: about 37 bytes of query per
    /// id keeps a call near 4 KB, well inside a gateway's request-line limit (quickscan-pro.md §6).
    public static let quickScanProIDsPerCall = 100

    /// UploadFileQuickScanPro: streams the file as `multipart/form-data` (`file`, `scan`,
    /// `password`; quickscan-pro.md §2.1).
    ///
    /// Without `scan` the upload is idempotent (files are stored by content). With `scan` it
    /// starts a scan and spends quota, so it is not repeated once it may have reached the
    /// server: a failure with `mayHaveTakenEffect` is reconciled with
    /// ``queryScanResults(filter:offset:limit:sort:)`` by sha256 before repeating.
    public func uploadQuickScanProFile(
        path: String, fileName: String? = nil, scan: Bool = false, password: String? = nil,
        expectedSHA256: String? = nil
    ) async throws(FalconError) -> QuickScanProUploadResult {
        let operation = "UploadFileQuickScanPro"
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw FalconError(kind: .localFile, message: "cannot read \(path): \(String(cString: strerror(errno)))", operation: operation)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw FalconError(kind: .localFile, message: "\(path) is not a regular file", operation: operation)
        }
        let size = Int64(st.st_size)
        guard size <= configuration.maxUploadBytes else {
            throw FalconError(kind: .localFile, message: "\(path) is \(size) bytes, over the upload limit of \(configuration.maxUploadBytes) bytes", operation: operation)
        }
        let name = fileName ?? (path as NSString).lastPathComponent
        var fields = [("scan", scan ? "true" : "false")]
        if let password { fields.append(("password", password)) }
        let body = MultipartFileBody(path: path, fileSize: size, fields: fields, fileName: name, filePartName: "file")
        let digest = NIOLockedValueBox<String?>(nil)
        let request = FalconRequest(
            operation: operation, method: .POST, path: "/quickscanpro/entities/files/v1", idempotent: !scan,
            contentType: body.contentType, body: { () throws(FalconError) -> HTTPClientRequest.Body? in try body.makeBody(digest: digest) })
        let reply = try await send(request)
        let response: FalconResponse<QuickScanProUpload>
        do {
            response = try decode(reply, as: QuickScanProUpload.self, operation: operation)
        } catch {
            var failure = error
            failure.mayHaveTakenEffect = scan
            throw failure
        }
        guard let file = response.resources.first, !file.sha256.isEmpty else {
            throw FalconError(kind: .decoding, message: "upload reply names no file", operation: operation, status: reply.status,
                              apiErrors: response.errors, traceID: response.traceID, mayHaveTakenEffect: scan)
        }
        if let sent = digest.withLockedValue({ $0 }), sent != file.sha256 {
            throw FalconError(kind: .decoding, message: "the API's sha256 \(file.sha256) differs from the bytes sent (\(sent))", operation: operation, traceID: response.traceID)
        }
        if let expected = expectedSHA256?.lowercased(), expected != file.sha256 {
            throw FalconError(kind: .localFile, message: "\(path) changed since it was hashed (expected \(expected), uploaded \(file.sha256))", operation: operation, traceID: response.traceID)
        }
        return QuickScanProUploadResult(sha256: file.sha256, scanID: file.scanID, size: size, response: response)
    }

    /// LaunchScan: one scan per file, `{"resources": [{"sha256": …, "password"?: …}]}`.
    ///
    /// Not idempotent (each call starts scans and spends quota): a failure with
    /// `mayHaveTakenEffect` must be reconciled by sha256 with QueryScanResults before
    /// repeating. Several sha256s in one call are allowed by the shape but undocumented
    /// (quickscan-pro.md §2.2); CrowdStrike's clients send one.
    public func launchQuickScanProScans(_ sha256s: [String], password: String? = nil) async throws(FalconError) -> FalconResponse<QuickScanProLaunch> {
        struct Item: Encodable { var sha256: String; var password: String? }
        struct Body: Encodable { var resources: [Item] }
        let operation = "LaunchScan"
        guard !sha256s.isEmpty else {
            throw FalconError(kind: .configuration, message: "LaunchScan needs at least one sha256", operation: operation)
        }
        let body = Body(resources: sha256s.map { Item(sha256: $0.lowercased(), password: password) })
        let request = FalconRequest(
            operation: operation, method: .POST, path: "/quickscanpro/entities/scans/v1", idempotent: false,
            contentType: "application/json", body: FalconRequest.json(body))
        let reply = try await send(request)
        let response: FalconResponse<QuickScanProLaunch>
        do {
            response = try decode(reply, as: QuickScanProLaunch.self, operation: operation)
        } catch {
            var failure = error
            failure.mayHaveTakenEffect = true
            throw failure
        }
        guard !response.resources.isEmpty else {
            throw FalconError(kind: .decoding, message: "LaunchScan reply carries no scan id", operation: operation,
                              status: reply.status, apiErrors: response.errors, traceID: response.traceID, mayHaveTakenEffect: true)
        }
        return response
    }

    /// LaunchScan for one file; returns its scan id.
    public func launchQuickScanProScan(sha256: String, password: String? = nil) async throws(FalconError) -> (scanID: String, response: FalconResponse<QuickScanProLaunch>) {
        let response = try await launchQuickScanProScans([sha256], password: password)
        let launch = response.resources.first { $0.sha256 == sha256.lowercased() } ?? response.resources[0]
        return (launch.id, response)
    }

    /// GetScanResult for many scans (`ids=a&ids=b`), ``quickScanProIDsPerCall`` ids per call.
    /// Scans still running come back with their status and no result, or not at all.
    public func getQuickScanProResults(ids: [String]) async throws(FalconError) -> FalconResponse<QuickScanProScan> {
        try await inChunks(ids) { chunk throws(FalconError) in
            let request = FalconRequest(
                operation: "GetScanResult", method: .GET, path: "/quickscanpro/entities/scans/v1",
                query: chunk.map { ("ids", $0) }, idempotent: true, returnedStatuses: [404])
            let reply = try await send(request)
            return try decode(reply, as: QuickScanProScan.self, operation: "GetScanResult")
        }
    }

    /// QueryScanResults: scan ids matching an FQL filter (required by the API; empty matches
    /// everything), e.g. `sha256:'<sha256>'` to find a file's scans after a lost LaunchScan.
    public func queryQuickScanProResults(
        filter: String = "", offset: Int? = nil, limit: Int? = nil, sort: QuickScanProSort? = nil
    ) async throws(FalconError) -> FalconResponse<String> {
        let operation = "QueryScanResults"
        if let limit, !(1...5000).contains(limit) {
            throw FalconError(kind: .configuration, message: "limit \(limit) is outside 1…5000", operation: operation)
        }
        if let offset, offset < 0 {
            throw FalconError(kind: .configuration, message: "offset \(offset) is negative", operation: operation)
        }
        var query: [(String, String)] = [("filter", filter)]
        if let offset { query.append(("offset", String(offset))) }
        if let limit { query.append(("limit", String(limit))) }
        if let sort { query.append(("sort", sort.rawValue)) }
        let request = FalconRequest(
            operation: operation, method: .GET, path: "/quickscanpro/queries/scans/v1", query: query, idempotent: true)
        let reply = try await send(request)
        return try decode(reply, as: String.self, operation: operation)
    }

    /// DeleteFile for many files by sha256, ``quickScanProIDsPerCall`` per call; `resources`
    /// lists what was deleted. A 404 (already gone) is not an error: deleting is the goal.
    @discardableResult
    public func deleteQuickScanProFiles(sha256s: [String]) async throws(FalconError) -> FalconResponse<String> {
        try await deleteQuickScanPro(operation: "DeleteFile", path: "/quickscanpro/entities/files/v1", ids: sha256s.map { $0.lowercased() })
    }

    /// DeleteScanResult for many scan ids, ``quickScanProIDsPerCall`` per call.
    @discardableResult
    public func deleteQuickScanProResults(ids: [String]) async throws(FalconError) -> FalconResponse<String> {
        try await deleteQuickScanPro(operation: "DeleteScanResult", path: "/quickscanpro/entities/scans/v1", ids: ids)
    }

    private func deleteQuickScanPro(operation: String, path: String, ids: [String]) async throws(FalconError) -> FalconResponse<String> {
        try await inChunks(ids) { chunk throws(FalconError) in
            let request = FalconRequest(
                operation: operation, method: .DELETE, path: path, query: chunk.map { ("ids", $0) }, idempotent: true,
                returnedStatuses: [404])
            let reply = try await send(request)
            return try decode(reply, as: String.self, operation: operation)
        }
    }

    /// Runs `call` per chunk of ``quickScanProIDsPerCall`` ids and merges the replies:
    /// resources and errors concatenated, the last meta, the worst status, and the raw bodies
    /// one per line.
    private func inChunks<Resource: Sendable>(
        _ ids: [String], _ call: ([String]) async throws(FalconError) -> FalconResponse<Resource>
    ) async throws(FalconError) -> FalconResponse<Resource> {
        guard !ids.isEmpty else {
            throw FalconError(kind: .configuration, message: "at least one id is required")
        }
        var merged: FalconResponse<Resource>?
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(ids.count, start + Self.quickScanProIDsPerCall)])
            start += chunk.count
            let response = try await call(chunk)
            guard var sum = merged else {
                merged = response
                continue
            }
            sum.resources += response.resources
            sum.errors += response.errors
            sum.meta = response.meta
            sum.status = max(sum.status, response.status)
            sum.traceID = response.traceID ?? sum.traceID
            sum.rawBody += Array("\n".utf8) + response.rawBody
            merged = sum
        }
        return merged!
    }
}
