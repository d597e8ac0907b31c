/// One entry of the API's `errors[]` array (`msa.APIError`).
public struct FalconAPIErrorItem: Codable, Sendable, Equatable {
    public var code: Int
    public var message: String
    public var id: String?

    public init(code: Int, message: String, id: String? = nil) {
        self.code = code
        self.message = message
        self.id = id
    }

    enum CodingKeys: String, CodingKey { case code, message, id }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        code = (try? c.decodeIfPresent(Int.self, forKey: .code)) ?? 0
        message = (try? c.decodeIfPresent(String.self, forKey: .message)) ?? ""
        id = try? c.decodeIfPresent(String.self, forKey: .id)
    }
}

/// The single error type of the Falcon client: what failed, the HTTP status, the API's
/// `errors[]` and trace id, and whether a retry could help. Never carries a secret or token.
public struct FalconError: Error, Sendable, CustomStringConvertible {
    /// What kind of failure this is; decides the CLI exit code and the caller's next step.
    public enum Kind: Sendable, Equatable {
        /// Bad or missing configuration or credentials (exit code 3).
        case configuration
        /// The token endpoint refused the credentials (400/403 on `/oauth2/token`).
        case authentication
        /// The API answered with an error status.
        case http
        /// 429 whose retry time lies beyond the call's deadline or attempts.
        case rateLimited
        /// The host could not be reached, or the connection broke.
        case transport
        /// The API answered 2xx with a body we could not read.
        case decoding
        /// A local file could not be read or is too large to upload.
        case localFile
    }

    public var kind: Kind
    public var message: String
    /// The operation (swagger operation id) that failed, e.g. `ScanSamples`.
    public var operation: String?
    public var status: Int?
    public var apiErrors: [FalconAPIErrorItem]
    public var traceID: String?
    /// When a retry may succeed later (5xx, 429, transport).
    public var isRetryable: Bool
    /// The request may have taken effect although no answer was read (a non-idempotent call
    /// broke after it was sent): the caller must reconcile before repeating it.
    public var mayHaveTakenEffect: Bool
    /// For `.rateLimited`: when the API said to retry.
    public var retryAfter: Double?

    public init(
        kind: Kind, message: String, operation: String? = nil, status: Int? = nil,
        apiErrors: [FalconAPIErrorItem] = [], traceID: String? = nil, isRetryable: Bool = false,
        mayHaveTakenEffect: Bool = false, retryAfter: Double? = nil
    ) {
        self.kind = kind
        self.message = message
        self.operation = operation
        self.status = status
        self.apiErrors = apiErrors
        self.traceID = traceID
        self.isRetryable = isRetryable
        self.mayHaveTakenEffect = mayHaveTakenEffect
        self.retryAfter = retryAfter
    }

    public var description: String {
        var parts: [String] = []
        if let operation { parts.append(operation) }
        if let status { parts.append("HTTP \(status)") }
        var text = parts.isEmpty ? message : parts.joined(separator: " ") + ": " + message
        let apiMessages = apiErrors.map { "\($0.message) (code \($0.code))" }.filter { !$0.hasPrefix(" (") }
        if !apiMessages.isEmpty, !apiMessages.contains(where: { message.contains($0) }) {
            text += " — API says: " + apiMessages.joined(separator: "; ")
        }
        if let traceID { text += " [trace id \(traceID)]" }
        if mayHaveTakenEffect { text += " (the request may have taken effect)" }
        return text
    }
}
