//! JWT mode's tokens, done by the book (RFC 8725, RFC 9068): one pinned algorithm, every claim
//! required and checked, a small leeway, no `crit`, no key material taken from the token, a
//! size cap before decoding, typed claims.

use std::path::Path;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::random::{RandomError, random_bytes};
use crate::config::{JwtAlgorithm, JwtSettings};

/// The `typ` header of our access tokens (RFC 9068); anything else is not an access token.
pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

#[derive(Debug, thiserror::Error)]
pub enum JwtSetupError {
    #[error("could not read the JWT private key {path}")]
    ReadKey {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the JWT private key is not usable for {alg:?}: {reason}")]
    BadKey { alg: JwtAlgorithm, reason: String },
    #[error("jwt.hs256_secret must be base64 of at least 32 random bytes")]
    WeakSecret,
    #[error("key generation failed")]
    Generate,
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// Why a presented access token was refused. Every variant becomes a 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("token larger than the size cap")]
    TooLarge,
    #[error("malformed token")]
    Malformed,
    #[error("the token's header declares critical extensions")]
    Critical,
    #[error("not an access token")]
    WrongType,
    #[error("algorithm not allowed")]
    WrongAlgorithm,
    #[error("invalid signature or claims: {0}")]
    Invalid(String),
    #[error("expired")]
    Expired,
    #[error("not valid yet")]
    NotYetValid,
    #[error("revoked")]
    Revoked,
}

/// The claims of an access token. Unknown claims are refused (a token of another kind does
/// not decode as this one), and so are duplicated ones (serde refuses a repeated field).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub exp: i64,
    pub nbf: i64,
    pub iat: i64,
    pub jti: String,
    pub roles: Vec<String>,
    /// The refresh family (the "session") this token was minted for: its public handle.
    pub sid: String,
    /// When the password was last typed in this family (login or step-up).
    pub auth_time: i64,
}

/// Where the signing key came from, for the start-up log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    File,
    Configured,
    Generated,
}

pub struct JwtAuthority {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwks: Option<serde_json::Value>,
    validation: Validation,
    settings: JwtSettings,
}

fn algorithm(alg: JwtAlgorithm) -> Algorithm {
    match alg {
        JwtAlgorithm::EdDSA => Algorithm::EdDSA,
        JwtAlgorithm::ES256 => Algorithm::ES256,
        JwtAlgorithm::RS256 => Algorithm::RS256,
        JwtAlgorithm::HS256 => Algorithm::HS256,
    }
}

struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Option<serde_json::Value>,
}

/// Builds both keys and the public JWK from a PKCS#8 (or, for RSA, PKCS#1) private key.
fn keys_from_der(alg: JwtAlgorithm, der: &[u8], pem_label: &str) -> Result<Keys, JwtSetupError> {
    let bad = |reason: String| JwtSetupError::BadKey { alg, reason };
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    match alg {
        JwtAlgorithm::EdDSA => {
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| bad(e.to_string()))?;
            let public = pair.public_key().as_ref().to_vec();
            Ok(Keys {
                encoding: EncodingKey::from_ed_der(der),
                jwk: Some(serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "x": b64(&public),
                    "alg": "EdDSA", "use": "sig", "kid": kid(&public),
                })),
                decoding: DecodingKey::from_ed_der(&public),
            })
        }
        JwtAlgorithm::ES256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|e| bad(e.to_string()))?;
            let point = pair.public_key().as_ref().to_vec();
            if point.len() != 65 {
                return Err(bad("not an uncompressed P-256 point".into()));
            }
            Ok(Keys {
                encoding: EncodingKey::from_ec_der(der),
                jwk: Some(serde_json::json!({
                    "kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]),
                    "alg": "ES256", "use": "sig", "kid": kid(&point),
                })),
                decoding: DecodingKey::from_ec_der(&point),
            })
        }
        JwtAlgorithm::RS256 => {
            let pair = if pem_label == "RSA PRIVATE KEY" {
                aws_lc_rs::rsa::KeyPair::from_der(der)
            } else {
                aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
            }
            .map_err(|e| bad(e.to_string()))?;
            let public = pair.public_key();
            let pem = pem::encode(&pem::Pem::new(pem_label.to_owned(), der.to_vec()));
            let encoding =
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
            Ok(Keys {
                encoding,
                jwk: Some(serde_json::json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                    "alg": "RS256", "use": "sig", "kid": kid(public.as_ref()),
                })),
                decoding: DecodingKey::from_rsa_der(public.as_ref()),
            })
        }
        JwtAlgorithm::HS256 => Err(bad("HS256 takes jwt.hs256_secret, not a key file".into())),
    }
}

/// A short, stable key ID: the first 64 bits of SHA-256 of the public key.
fn kid(public: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..8])
}

fn generated_der(alg: JwtAlgorithm) -> Result<(Vec<u8>, &'static str), JwtSetupError> {
    let rng = SystemRandom::new();
    match alg {
        JwtAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|doc| (doc.as_ref().to_vec(), "PRIVATE KEY"))
            .map_err(|_| JwtSetupError::Generate),
        JwtAlgorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map(|doc| (doc.as_ref().to_vec(), "PRIVATE KEY"))
            .map_err(|_| JwtSetupError::Generate),
        JwtAlgorithm::RS256 => {
            use aws_lc_rs::encoding::AsDer;
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| JwtSetupError::Generate)?;
            let der = pair.as_der().map_err(|_| JwtSetupError::Generate)?;
            Ok((der.as_ref().to_vec(), "PRIVATE KEY"))
        }
        JwtAlgorithm::HS256 => Err(JwtSetupError::Generate),
    }
}

impl JwtAuthority {
    /// Loads the configured key (file or HS256 secret) or generates one.
    pub fn from_settings(
        settings: &JwtSettings,
    ) -> Result<(JwtAuthority, KeyOrigin), JwtSetupError> {
        let alg = settings.algorithm;
        let (keys, origin) = if alg == JwtAlgorithm::HS256 {
            let (secret, origin) = if settings.hs256_secret.is_empty() {
                (random_bytes::<32>()?.to_vec(), KeyOrigin::Generated)
            } else {
                let secret = base64::engine::general_purpose::STANDARD
                    .decode(settings.hs256_secret.trim())
                    .map_err(|_| JwtSetupError::WeakSecret)?;
                (secret, KeyOrigin::Configured)
            };
            if secret.len() < 32 {
                return Err(JwtSetupError::WeakSecret);
            }
            let keys = Keys {
                encoding: EncodingKey::from_secret(&secret),
                decoding: DecodingKey::from_secret(&secret),
                jwk: None,
            };
            (keys, origin)
        } else if settings.private_key_file.is_empty() {
            let (der, label) = generated_der(alg)?;
            (keys_from_der(alg, &der, label)?, KeyOrigin::Generated)
        } else {
            let path = Path::new(&settings.private_key_file);
            let text = std::fs::read(path).map_err(|source| JwtSetupError::ReadKey {
                path: settings.private_key_file.clone(),
                source,
            })?;
            let parsed = pem::parse(text).map_err(|e| JwtSetupError::BadKey {
                alg,
                reason: e.to_string(),
            })?;
            (
                keys_from_der(alg, parsed.contents(), parsed.tag())?,
                KeyOrigin::File,
            )
        };
        Ok((JwtAuthority::new(settings, keys), origin))
    }

    fn new(settings: &JwtSettings, keys: Keys) -> JwtAuthority {
        let alg = algorithm(settings.algorithm);
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_issuer(&[settings.issuer.as_str()]);
        validation.set_audience(&[settings.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        // exp and nbf are checked below against the app's clock (the one that also expires
        // sessions and refresh families), with the configured leeway; presence is still
        // required here.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = settings.leeway_secs;
        JwtAuthority {
            algorithm: alg,
            encoding: keys.encoding,
            decoding: keys.decoding,
            jwks: keys.jwk.map(|jwk| serde_json::json!({"keys": [jwk]})),
            validation,
            settings: settings.clone(),
        }
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The public keys as a JWK Set; `None` for HS256, whose key must never leave the server.
    pub fn jwks(&self) -> Option<&serde_json::Value> {
        self.jwks.as_ref()
    }

    pub fn mint(&self, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }

    /// Fresh claims for `user` in family `sid`, valid from `now` for the access lifetime but
    /// never past `not_after` (the family's absolute deadline): no token outlives its login.
    #[allow(clippy::too_many_arguments)]
    pub fn claims(
        &self,
        user: &str,
        roles: Vec<String>,
        sid: &str,
        auth_time: i64,
        now: i64,
        jti: String,
        not_after: i64,
    ) -> AccessClaims {
        AccessClaims {
            iss: self.settings.issuer.clone(),
            aud: self.settings.audience.clone(),
            sub: user.to_owned(),
            exp: (now + self.settings.access_ttl_secs as i64).min(not_after),
            nbf: now,
            iat: now,
            jti,
            roles,
            sid: sid.to_owned(),
            auth_time,
        }
    }

    /// Verifies a presented access token completely; `now` is the app clock.
    pub fn verify(&self, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > self.settings.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        self.check_header(token)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Invalid(e.to_string()),
            })?;
        let claims = data.claims;
        let leeway = self.settings.leeway_secs as i64;
        if claims.exp <= now - leeway {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + leeway {
            return Err(TokenError::NotYetValid);
        }
        Ok(claims)
    }

    /// Our own look at the header before the library's: it must name our token type and must
    /// not carry `crit` (RFC 7515 4.1.11: unknown critical extensions mean reject). The
    /// algorithm is pinned by the library's validation (`algorithms = [configured]`), and an
    /// unknown `alg` such as `none` does not even parse.
    /// Key references in the header (`jwk`, `jku`, `x5u`, `x5c`, `kid`) are never consulted:
    /// the verifying key is fixed by configuration.
    fn check_header(&self, token: &str) -> Result<(), TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(_), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| TokenError::Malformed)?;
        let header: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        if header.contains_key("crit") {
            return Err(TokenError::Critical);
        }

        if header.get("typ").and_then(|t| t.as_str()) != Some(ACCESS_TOKEN_TYPE) {
            return Err(TokenError::WrongType);
        }
        Ok(())
    }
}

/// A CSRF token for a refresh family: HMAC-SHA256(secret, handle), 128 bits. Stateless, tied
/// to the login, and unknowable without the server's secret.
pub fn family_csrf(secret: &[u8], handle: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, format!("csrf:{handle}").as_bytes());
    URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
}
