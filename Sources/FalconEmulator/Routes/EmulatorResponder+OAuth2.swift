import Foundation

/// `POST /oauth2/token` and `POST /oauth2/revoke` (fact sheet §1).
extension EmulatorResponder {
    /// Form fields of `oauth2AccessToken` (§1.1); `grant_type` is added by x/oauth2 (gofalcon).
    static let tokenFields: Set<String> = ["client_id", "client_secret", "member_cid", "grant_type"]
    /// Form fields of `oauth2RevokeToken` (§1.2).
    static let revokeFields: Set<String> = ["token", "client_id"]
    /// The swagger `consumes` of both endpoints.
    static let formTypes: Set<String> = ["application/x-www-form-urlencoded", "text/html"]

    func issueToken(_ exchange: inout Exchange) async throws -> Reply {
        try exchange.requireQuery(within: [])
        _ = try exchange.requireContentType(Self.formTypes)
        let form = try await exchange.formBody()
        if let unknown = form.first(where: { !Self.tokenFields.contains($0.name) }) {
            throw RequestRejection.violation(
                "unknown form field '\(unknown.name)' for oauth2AccessToken (expected client_id, client_secret, member_cid, grant_type)"
            )
        }
        func field(_ name: String) -> String? { form.last { $0.name == name }?.value }
        if let grant = field("grant_type"), grant != "client_credentials" {
            throw RequestRejection.violation("grant_type must be client_credentials, got '\(grant)'")
        }
        // x/oauth2 may send the client credentials as HTTP Basic instead of form fields.
        var clientID = field("client_id")
        var clientSecret = field("client_secret")
        if clientID == nil || clientSecret == nil, let basic = Self.basicCredentials(exchange) {
            clientID = clientID ?? basic.id
            clientSecret = clientSecret ?? basic.secret
        }
        guard let clientID, !clientID.isEmpty, let clientSecret, !clientSecret.isEmpty else {
            throw RequestRejection.violation("client_id and client_secret are required (form fields or HTTP Basic)")
        }
        let accepted = state.withLock { state in
            state.configuration.credentials.isEmpty || state.configuration.credentials[clientID] == clientSecret
        }
        guard accepted else {
            return Reply.metaOnly(403, "access denied, authorization failed", poweredBy: PoweredBy.oauth2)
        }
        if let memberCID = field("member_cid"), !Self.isMemberCID(memberCID) {
            return Reply.metaOnly(403, "Failed to generate access token for customer ID=\(memberCID)", poweredBy: PoweredBy.oauth2)
        }
        let token = Self.randomHex(bytes: 48)
        let memberCID = field("member_cid").map { String($0.prefix(32)).lowercased() }
        let (lifetime, region) = state.withLock { state -> (Int, String?) in
            let lifetime = state.configuration.tokenLifetimeSeconds
            state.tokens[token] = EmulatorState.Token(
                clientID: clientID, expiresAt: exchange.now + Double(lifetime), cid: memberCID ?? state.configuration.cid)
            state.stats.tokensIssued += 1
            return (lifetime, state.configuration.region)
        }
        var reply = Reply(status: 201, body: .json([
            "access_token": .string(token),
            "token_type": "bearer",
            "expires_in": .int(lifetime),
        ]))
        if let region { reply.headers.append(("X-Cs-Region", region)) }
        return reply
    }

    func revokeToken(_ exchange: inout Exchange) async throws -> Reply {
        try exchange.requireQuery(within: [])
        guard let basic = Self.basicCredentials(exchange) else {
            throw RequestRejection.violation(
                "oauth2RevokeToken needs Authorization: basic base64(client_id:client_secret)", status: 403
            )
        }
        _ = try exchange.requireContentType(Self.formTypes)
        let form = try await exchange.formBody()
        if let unknown = form.first(where: { !Self.revokeFields.contains($0.name) }) {
            throw RequestRejection.violation("unknown form field '\(unknown.name)' for oauth2RevokeToken (expected token, client_id)")
        }
        guard let token = form.last(where: { $0.name == "token" })?.value, !token.isEmpty else {
            throw RequestRejection.violation("form field 'token' is required")
        }
        let accepted = state.withLock { state -> Bool in
            let credentials = state.configuration.credentials
            guard credentials.isEmpty || credentials[basic.id] == basic.secret else { return false }
            // RFC 7009: revoking an unknown token is not an error.
            if let owner = state.tokens[token]?.clientID, credentials.isEmpty || owner == basic.id {
                state.tokens[token] = nil
            }
            state.stats.revokes += 1
            return true
        }
        guard accepted else {
            return Reply.metaOnly(403, "access denied, authorization failed", poweredBy: PoweredBy.oauth2)
        }
        return Reply(status: 200, body: .envelope(Envelope(poweredBy: PoweredBy.oauth2)))
    }

    /// `Authorization: Basic base64(id:secret)`, scheme case-insensitive; id and secret may be
    /// form-encoded (RFC 6749 §2.3.1, as x/oauth2 sends them).
    static func basicCredentials(_ exchange: Exchange) -> (id: String, secret: String)? {
        guard let authorization = exchange.authorization, authorization.scheme.lowercased() == "basic",
              let data = Data(base64Encoded: authorization.credentials),
              let text = String(data: data, encoding: .utf8),
              let colon = text.firstIndex(of: ":") else { return nil }
        return (URLEncoding.decode(text[..<colon]), URLEncoding.decode(text[text.index(after: colon)...]))
    }

    /// `^[a-fA-F0-9]{32}(-\w{2})?$` (PSFalcon's member_cid check, §1.1).
    static func isMemberCID(_ text: String) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard let first = parts.first, first.utf8.count == 32, first.utf8.allSatisfy(\.isHexDigit) else { return false }
        if parts.count == 1 { return true }
        return parts.count == 2 && parts[1].count == 2 && parts[1].allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" }
    }

    static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<bytes * 2).map { _ in digits[Int(generator.next() % 16)] })
    }
}
