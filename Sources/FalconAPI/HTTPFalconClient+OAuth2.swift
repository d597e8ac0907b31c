import AsyncHTTPClient
import Foundation
import NIOCore

/// The token response (`domain.AccessTokenResponseV1`).
struct AccessTokenReply: Decodable {
    var accessToken: String
    var expiresIn: Double?

    enum CodingKeys: String, CodingKey {
        case accessToken = "access_token"
        case expiresIn = "expires_in"
    }
}

extension HTTPFalconClient {
    /// A valid bearer token, fetched or refreshed ahead of expiry.
    func bearerToken() async throws(FalconError) -> String {
        do {
            return try await tokens.token(now: clock.now().timeIntervalSince1970) { [self] in
                try await self.fetchToken()
            }.value
        } catch let error as FalconError {
            throw error
        } catch {
            throw FalconError(kind: .authentication, message: "token request failed: \(error)", operation: "oauth2AccessToken")
        }
    }

    /// Authenticates now (useful to check credentials up front).
    public func authenticate() async throws(FalconError) {
        _ = try await bearerToken()
    }

    /// `POST /oauth2/token` (201); follows `X-Cs-Region` when the cloud is `auto` and no base
    /// URL override is set (reference §2).
    func fetchToken() async throws -> BearerToken {
        let creds = configuration.credentials
        var form = [("client_id", creds.clientID), ("client_secret", creds.clientSecret)]
        if let member = creds.memberCID { form.append(("member_cid", member)) }
        let request = FalconRequest(
            operation: "oauth2AccessToken", method: .POST, path: "/oauth2/token", auth: .none, idempotent: true,
            contentType: "application/x-www-form-urlencoded", body: FalconRequest.form(form))
        let reply = try await send(request)
        let parsed: AccessTokenReply
        do {
            parsed = try JSONDecoder().decode(AccessTokenReply.self, from: Data(reply.body))
        } catch {
            throw FalconError(kind: .decoding, message: "token reply has no access_token", operation: "oauth2AccessToken", status: reply.status, traceID: reply.traceID)
        }
        let lifetime = max(1, parsed.expiresIn ?? 1799)
        let renewWindow = min(configuration.tokenRenewWindow, lifetime / 2)
        let token = BearerToken(value: parsed.accessToken, refreshAt: clock.now().timeIntervalSince1970 + lifetime - renewWindow)

        if configuration.cloud == .auto, configuration.baseURL == nil,
           let header = reply.headers.first(name: "X-Cs-Region"), let region = FalconCloud(regionHeader: header),
           region.baseURL != (await tokens.baseURL) {
            // gofalcon's way: revoke the token at the old host, then authenticate at the regional one.
            logger.info("following the cloud region named by the token reply", metadata: ["falcon.region": "\(region)"])
            try? await revoke(token: token.value)
            await tokens.switchBaseURL(region.baseURL)
            return try await fetchToken()
        }
        return token
    }

    /// `POST /oauth2/revoke` with Basic client authentication.
    func revoke(token: String) async throws(FalconError) {
        let request = FalconRequest(
            operation: "oauth2RevokeToken", method: .POST, path: "/oauth2/revoke", auth: .basic, idempotent: true,
            contentType: "application/x-www-form-urlencoded",
            body: FalconRequest.form([("token", token), ("client_id", configuration.credentials.clientID)]))
        _ = try await send(request)
    }
}
