/// Everything an `HTTPFalconClient` needs to reach the API.
public struct FalconClientConfiguration: Sendable {
    public var credentials: FalconCredentials
    /// The cloud; `auto` follows the token response's `X-Cs-Region` header.
    public var cloud: FalconCloud
    /// Overrides the cloud's host (proxy, emulator, tests); region discovery never replaces it.
    public var baseURL: String?
    public var userAgent: String
    /// Seconds one HTTP attempt may take (connect, send, receive).
    public var requestTimeout: Double
    public var retry: RetryPolicy
    /// Refresh the token this many seconds before it expires (clamped to half its lifetime).
    public var tokenRenewWindow: Double
    /// Files larger than this are refused before anything is sent (Sample Uploads v3: 256 MB).
    public var maxUploadBytes: Int64
    /// Verify the server's TLS certificate (on by default; off only for a lab proxy, and logged).
    public var verifyTLSCertificates: Bool = true
    /// Allows a plain `http://` base URL to a host other than this machine (the secret would
    /// travel in clear): `falcon.allow_plain_http`.
    public var allowPlainHTTP: Bool = false
    /// The most requests in flight at once; `RequestLimiter` adapts the concurrency below it.
    public var maxConcurrentRequests: Int = FalconClientConfiguration.defaultMaxConcurrentRequests

    public static let defaultMaxConcurrentRequests = 32
    /// The API's sliding rate-limit window in seconds (reference §3.2: one minute).
    public var rateLimitWindow: Double = 60

    public static let defaultMaxUploadBytes: Int64 = 256 * 1024 * 1024

    public init(
        credentials: FalconCredentials, cloud: FalconCloud = .us1, baseURL: String? = nil,
        userAgent: String = "quickscan/0.1", requestTimeout: Double = 120, retry: RetryPolicy = RetryPolicy(),
        tokenRenewWindow: Double = 120, maxUploadBytes: Int64 = FalconClientConfiguration.defaultMaxUploadBytes
    ) {
        self.credentials = credentials
        self.cloud = cloud
        self.baseURL = baseURL
        self.userAgent = userAgent
        self.requestTimeout = requestTimeout
        self.retry = retry
        self.tokenRenewWindow = tokenRenewWindow
        self.maxUploadBytes = maxUploadBytes
    }

    /// The base URL requests start at: the override, else the cloud's host; no trailing `/`.
    public var initialBaseURL: String {
        var url = baseURL ?? cloud.baseURL
        while url.hasSuffix("/") { url.removeLast() }
        return url
    }

    /// Whether an `http://` URL names this machine (127.0.0.0/8, ::1, localhost).
    static func isLoopback(_ url: String) -> Bool {
        var rest = url.dropFirst("http://".count)
        if let at = rest.firstIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        let host: Substring
        if rest.hasPrefix("[") {
            host = rest.dropFirst().prefix { $0 != "]" }
        } else {
            host = rest.prefix { $0 != ":" && $0 != "/" }
        }
        return host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Checks the base URL override; returns a configuration error naming it.
    public func validate() throws(FalconError) {
        if let baseURL {
            guard baseURL.hasPrefix("http://") || baseURL.hasPrefix("https://"), baseURL.count > "http://".count else {
                throw FalconError(kind: .configuration, message: "base URL \"\(baseURL)\" must start with http:// or https://")
            }
            // The client secret would travel in clear: plain HTTP only to this machine, unless
            // allowed explicitly (falcon.allow_plain_http).
            if baseURL.hasPrefix("http://") && !allowPlainHTTP && !Self.isLoopback(baseURL) {
                throw FalconError(kind: .configuration, message: "base URL \"\(baseURL)\" is plain http:// to another host: the client secret would travel in clear; use https://, or set falcon.allow_plain_http: true")
            }
        }
        guard !credentials.clientID.isEmpty, !credentials.clientSecret.isEmpty else {
            throw FalconError(kind: .configuration, message: "the Falcon client id and secret must not be empty")
        }
    }
}
