import Foundation

/// A bearer token and when it stops being usable.
struct BearerToken: Sendable {
    var value: String
    /// Epoch seconds after which the token is refreshed before use.
    var refreshAt: Double
}

/// Holds the current token and base URL; one refresh at a time, shared by concurrent callers.
actor TokenStore {
    private var token: BearerToken?
    private var refreshing: Task<BearerToken, any Error>?
    /// Where requests go; changes only by `auto` region discovery without an override.
    private(set) var baseURL: String

    init(baseURL: String) {
        self.baseURL = baseURL
    }

    /// A token usable now, fetching a new one (once, for all waiters) when missing or stale.
    func token(now: Double, fetch: @escaping @Sendable () async throws -> BearerToken) async throws -> BearerToken {
        if let token, now < token.refreshAt { return token }
        if let refreshing { return try await refreshing.value }
        let task = Task { try await fetch() }
        refreshing = task
        defer { refreshing = nil }
        let fresh = try await task.value
        token = fresh
        return fresh
    }

    /// Drops `value` if it is still the current token (after a 401), so the next call fetches.
    /// Returns false when it was already replaced (by a concurrent call's refresh).
    @discardableResult
    func invalidate(_ value: String) -> Bool {
        guard token?.value == value else { return false }
        token = nil
        return true
    }

    /// Removes and returns the current token (for revoke on shutdown).
    func take() -> BearerToken? {
        defer { token = nil }
        return token
    }

    func switchBaseURL(_ url: String) {
        baseURL = url
    }
}
