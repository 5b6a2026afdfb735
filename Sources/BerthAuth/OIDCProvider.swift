import BerthConfig
import BerthCore
import Foundation
import JWTKit

/// What the SSH sign-in (OIDCSignIn) and the console's sign-in (OIDCCodeExchange) share about
/// one OpenID Connect provider: discovery, ID-token verification with jwt-kit against the JWKS
/// (signature, issuer, audience, expiry, nonce) and the userinfo call. docs/security.md,
/// "OAuth2 / OIDC".
struct OIDCProvider: Sendable {
    let http: OAuth2HTTP
    let issuerURL: String
    let clientId: String

    struct Discovery: Decodable, Sendable {
        let issuer: String
        let authorization_endpoint: String?
        let device_authorization_endpoint: String?
        let token_endpoint: String
        let userinfo_endpoint: String?
        let jwks_uri: String
    }

    struct IDToken: JWTPayload {
        let iss: IssuerClaim
        let aud: AudienceClaim
        let exp: ExpirationClaim
        let sub: SubjectClaim
        let nonce: String?

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
        }
    }

    func discover() async throws -> Discovery {
        let base = issuerURL.hasSuffix("/") ? issuerURL : issuerURL + "/"
        return try http.decode(try await http.getOK(base + ".well-known/openid-configuration"), "discovery")
    }

    /// The verified ID token's claims, replaced by the userinfo answer when the provider has
    /// that endpoint (after checking it is about the same subject).
    func identity(idToken: String, accessToken: String, discovery: Discovery, nonce: String?) async throws -> ConfigValue {
        let claims = try await verify(idToken, discovery: discovery, nonce: nonce)
        guard let userinfo = discovery.userinfo_endpoint else { return claims }
        let identity = try http.jsonObject(try await http.getOK(userinfo, bearer: accessToken), "userinfo")
        // OpenID Connect Core §5.3.2: userinfo must be about the ID token's subject.
        guard identity["sub"]?.stringValue == claims["sub"]?.stringValue else {
            throw OAuth2ProviderError("the userinfo subject differs from the ID token's")
        }
        return identity
    }

    func verify(_ token: String, discovery: Discovery, nonce: String?) async throws -> ConfigValue {
        let jwks = try await http.getOK(discovery.jwks_uri)
        let keys = JWTKeyCollection()
        let claims: IDToken
        do {
            try await keys.add(jwksJSON: String(decoding: jwks, as: UTF8.self))
            claims = try await keys.verify(token, as: IDToken.self)
        } catch {
            throw OAuth2UserRefusal(reason: "the ID token does not verify against the provider's keys (\(error))")
        }
        guard claims.iss.value == discovery.issuer else { throw OAuth2UserRefusal(reason: "the ID token's issuer \(claims.iss.value) is not \(discovery.issuer)") }
        guard claims.aud.value.contains(clientId) else {
            throw OAuth2UserRefusal(reason: "the ID token is not for this client (audience \(claims.aud.value.joined(separator: ",")))")
        }
        // OpenID Connect Core §3.1.3.7: a nonce sent must come back, or the token was made for another request.
        if let nonce, claims.nonce != nonce { throw OAuth2UserRefusal(reason: "the ID token's nonce is not this sign-in's") }
        // Verified above; the middle part holds every claim, usernameField may name any of them.
        let parts = token.split(separator: ".")
        var payload = String(parts[1]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while payload.count % 4 != 0 { payload += "=" }
        guard let data = Data(base64Encoded: payload) else { throw OAuth2ProviderError("the ID token's claims are not base64url") }
        return try http.jsonObject(Array(data), "ID token claims")
    }
}
