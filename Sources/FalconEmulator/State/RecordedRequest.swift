/// What the emulator saw of one request and what it answered; never holds a token or secret.
public struct RecordedRequest: Sendable, Equatable {
    /// HTTP method, upper case.
    public var method: String
    /// Request path without the query.
    public var path: String
    /// The operation the path and method map to, nil for an unknown route.
    public var operation: FalconOperation?
    /// The query string as sent (still percent-encoded), empty when there was none.
    public var rawQuery: String
    /// The decoded query items, in order (`+` decodes to a space, as on the real gateway).
    public var queryItems: [QueryItem]
    /// The `Content-Type` header.
    public var contentType: String?
    /// The scheme of the `Authorization` header as sent (`Bearer`, `basic`, ...).
    public var authorizationScheme: String?
    /// Names of the body's fields: form fields, multipart part names or top-level JSON keys.
    public var bodyFields: [String]
    /// The status sent, nil when the connection was closed without a response.
    public var status: Int?
    /// The ``FaultRule/Kind/name`` of the fault applied, if any (latency included).
    public var fault: String?
    /// The `X-Cs-Traceid` of the response.
    public var traceID: String
}
