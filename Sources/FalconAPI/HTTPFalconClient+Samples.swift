import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What an upload sent and what the API answered.
public struct UploadResult: Sendable {
    /// The sha256 the API computed (the sample id).
    public var sha256: String
    public var fileName: String?
    /// Bytes of file content sent.
    public var size: Int64
    public var response: FalconResponse<UploadedSample>
}

extension HTTPFalconClient {
    /// UploadSampleV3: streams the file as `multipart/form-data` (reference §4.1).
    ///
    /// Files over `maxUploadBytes` are refused before anything is sent. When `expectedSHA256`
    /// is given, an API digest that differs (the file changed since it was hashed) is an error.
    public func uploadSample(
        path: String, fileName: String? = nil, comment: String? = nil, isConfidential: Bool = true,
        expectedSHA256: String? = nil
    ) async throws(FalconError) -> UploadResult {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw FalconError(kind: .localFile, message: "cannot read \(path): \(String(cString: strerror(errno)))", operation: "UploadSampleV3")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw FalconError(kind: .localFile, message: "\(path) is not a regular file", operation: "UploadSampleV3")
        }
        let size = Int64(st.st_size)
        guard size <= configuration.maxUploadBytes else {
            throw FalconError(kind: .localFile, message: "\(path) is \(size) bytes, over the upload limit of \(configuration.maxUploadBytes) bytes", operation: "UploadSampleV3")
        }
        let name = fileName ?? (path as NSString).lastPathComponent
        var fields = [("file_name", name)]
        if let comment { fields.append(("comment", comment)) }
        // FalconPy sends is_confidential only when true; sending "false" explicitly is the only
        // way to make a sample public, so we always send it.
        fields.append(("is_confidential", isConfidential ? "true" : "false"))
        let body = MultipartFileBody(path: path, fileSize: size, fields: fields, fileName: name)
        let digest = NIOLockedValueBox<String?>(nil)
        let request = FalconRequest(
            operation: "UploadSampleV3", method: .POST, path: "/samples/entities/samples/v3", idempotent: true,
            contentType: body.contentType, body: { () throws(FalconError) -> HTTPClientRequest.Body? in try body.makeBody(digest: digest) })
        let reply = try await send(request)
        let response = try decode(reply, as: UploadedSample.self, operation: "UploadSampleV3")
        guard let sample = response.resources.first else {
            throw FalconError(kind: .decoding, message: "upload reply names no sample", operation: "UploadSampleV3", status: reply.status, traceID: response.traceID)
        }
        let apiSHA = sample.sha256.lowercased()
        if let sent = digest.withLockedValue({ $0 }), sent != apiSHA {
            throw FalconError(kind: .decoding, message: "the API's sha256 \(apiSHA) differs from the bytes sent (\(sent))", operation: "UploadSampleV3", traceID: response.traceID)
        }
        if let expected = expectedSHA256?.lowercased(), expected != apiSHA {
            throw FalconError(kind: .localFile, message: "\(path) changed since it was hashed (expected \(expected), uploaded \(apiSHA))", operation: "UploadSampleV3", traceID: response.traceID)
        }
        return UploadResult(sha256: apiSHA, fileName: sample.fileName, size: size, response: response)
    }

    /// DeleteSampleV3. A 404 (already gone) counts as success: deleting is the goal.
    @discardableResult
    public func deleteSample(sha256: String) async throws(FalconError) -> FalconResponse<String> {
        let request = FalconRequest(
            operation: "DeleteSampleV3", method: .DELETE, path: "/samples/entities/samples/v3",
            query: [("ids", sha256)], idempotent: true)
        do {
            let reply = try await send(request)
            return try decode(reply, as: String.self, operation: "DeleteSampleV3")
        } catch where error.status == 404 {
            return FalconResponse(resources: [], meta: FalconMeta(), errors: error.apiErrors, status: 404, traceID: error.traceID, rawBody: [])
        }
    }
}
