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
    #[error("could not read the JWT key file {path}")]
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
    #[error(
        "jwt.previous_public_key_files: {path} is not a {alg:?} public key (PEM \"PUBLIC KEY\"): {reason}"
    )]
    BadPreviousKey {
        path: String,
        alg: JwtAlgorithm,
        reason: String,
    },
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
    #[error("no key with the token's kid verifies tokens here")]
    UnknownKey,
    #[error("issued in the future")]
    IssuedInFuture,
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
    /// The signing key's ID: in every token's header, and in the JWKS.
    kid: String,
    /// The keys tokens are verified with, by `kid`: the signing key first, then the previous
    /// keys of a rotation (`jwt.previous_public_key_files`), which verify but never sign.
    verifiers: Vec<Verifier>,
    jwks: Option<serde_json::Value>,
    validation: Validation,
    settings: JwtSettings,
}

/// A public key that verifies tokens, and how it is published.
struct Verifier {
    kid: String,
    decoding: DecodingKey,
    jwk: Option<serde_json::Value>,
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
    verifier: Verifier,
}

/// Builds the signing key and its verifier from a PKCS#8 (or, for RSA, PKCS#1) private key.
fn keys_from_der(alg: JwtAlgorithm, der: &[u8], pem_label: &str) -> Result<Keys, JwtSetupError> {
    let bad = |reason: String| JwtSetupError::BadKey { alg, reason };
    match alg {
        JwtAlgorithm::EdDSA => {
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| bad(e.to_string()))?;
            Ok(Keys {
                encoding: EncodingKey::from_ed_der(der),
                verifier: verifier(alg, pair.public_key().as_ref()).map_err(bad)?,
            })
        }
        JwtAlgorithm::ES256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(|e| bad(e.to_string()))?;
            Ok(Keys {
                encoding: EncodingKey::from_ec_der(der),
                verifier: verifier(alg, pair.public_key().as_ref()).map_err(bad)?,
            })
        }
        JwtAlgorithm::RS256 => {
            let pair = if pem_label == "RSA PRIVATE KEY" {
                aws_lc_rs::rsa::KeyPair::from_der(der)
            } else {
                aws_lc_rs::rsa::KeyPair::from_pkcs8(der)
            }
            .map_err(|e| bad(e.to_string()))?;
            let pem = pem::encode(&pem::Pem::new(pem_label.to_owned(), der.to_vec()));
            let encoding =
                EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| bad(e.to_string()))?;
            Ok(Keys {
                encoding,
                verifier: verifier(alg, pair.public_key().as_ref()).map_err(bad)?,
            })
        }
        JwtAlgorithm::HS256 => Err(bad("HS256 takes jwt.hs256_secret, not a key file".into())),
    }
}

/// The verifier of a public key in its raw form: the 32-byte Ed25519 key, the uncompressed
/// P-256 point, or the PKCS#1 `RSAPublicKey` DER. The key ID depends on the key alone, so a
/// key keeps its `kid` when it moves from signing to verifying only.
fn verifier(alg: JwtAlgorithm, public: &[u8]) -> Result<Verifier, String> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let kid = kid(public);
    let (decoding, jwk) = match alg {
        JwtAlgorithm::EdDSA => {
            if public.len() != 32 {
                return Err("not an Ed25519 public key".into());
            }
            let jwk = serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(public),
                "alg": "EdDSA", "use": "sig", "kid": kid,
            });
            (DecodingKey::from_ed_der(public), jwk)
        }
        JwtAlgorithm::ES256 => {
            if public.len() != 65 || public[0] != 4 {
                return Err("not an uncompressed P-256 point".into());
            }
            let jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": b64(&public[1..33]), "y": b64(&public[33..]),
                "alg": "ES256", "use": "sig", "kid": kid,
            });
            (DecodingKey::from_ec_der(public), jwk)
        }
        JwtAlgorithm::RS256 => {
            let key = aws_lc_rs::rsa::PublicKey::from_der(public).map_err(|e| e.to_string())?;
            let jwk = serde_json::json!({
                "kty": "RSA",
                "n": b64(key.modulus().big_endian_without_leading_zero()),
                "e": b64(key.exponent().big_endian_without_leading_zero()),
                "alg": "RS256", "use": "sig", "kid": kid,
            });
            (DecodingKey::from_rsa_der(key.as_ref()), jwk)
        }
        JwtAlgorithm::HS256 => return Err("HS256 has no public key".into()),
    };
    Ok(Verifier {
        kid,
        decoding,
        jwk: Some(jwk),
    })
}

/// A previous signing key's public half, from a PEM file (`PUBLIC KEY`, or `RSA PUBLIC KEY`
/// for RS256), as `openssl pkey -pubout` writes it.
fn previous_verifier(alg: JwtAlgorithm, path: &str) -> Result<Verifier, JwtSetupError> {
    let bad = |reason: String| JwtSetupError::BadPreviousKey {
        path: path.to_owned(),
        alg,
        reason,
    };
    let text = std::fs::read(path).map_err(|source| JwtSetupError::ReadKey {
        path: path.to_owned(),
        source,
    })?;
    let parsed = pem::parse(&text).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.tag(), "PUBLIC KEY" | "RSA PUBLIC KEY") {
        return Err(bad(format!(
            "found a {:?} PEM; give the public key only",
            parsed.tag()
        )));
    }
    let raw = |key: jsonwebtoken::errors::Result<DecodingKey>| match key {
        Ok(key) => match key.kind() {
            jsonwebtoken::DecodingKeyKind::SecretOrDer(raw) => Ok(raw.clone()),
            jsonwebtoken::DecodingKeyKind::RsaModulusExponent { .. } => {
                Err(bad("unexpected key form".into()))
            }
        },
        Err(e) => Err(bad(e.to_string())),
    };
    let public = match alg {
        JwtAlgorithm::EdDSA => raw(DecodingKey::from_ed_pem(&text))?,
        JwtAlgorithm::ES256 => raw(DecodingKey::from_ec_pem(&text))?,
        JwtAlgorithm::RS256 => aws_lc_rs::rsa::PublicKey::from_der(parsed.contents())
            .map_err(|e| bad(e.to_string()))?
            .as_ref()
            .to_vec(),
        JwtAlgorithm::HS256 => return Err(bad("HS256 keys are secrets, not PEM files".into())),
    };
    verifier(alg, &public).map_err(bad)
}

/// A short, stable key ID: the first 64 bits of SHA-256 of the public key.
fn kid(public: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    URL_SAFE_NO_PAD.encode(&Sha256::digest(public)[..8])
}

/// HS256's key ID: derived from the secret by HMAC, so it names the key without revealing it.
fn secret_kid(secret: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    URL_SAFE_NO_PAD.encode(&aws_lc_rs::hmac::sign(&key, b"sessiond kid").as_ref()[..8])
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

/// A new private key for `alg` as a PEM file's text (`PRIVATE KEY`, PKCS#8): what
/// `jwt.private_key_file` takes. Instances that share it verify each other's tokens.
pub fn generate_private_key_pem(alg: JwtAlgorithm) -> Result<String, JwtSetupError> {
    let (der, label) = generated_der(alg)?;
    Ok(pem::encode(&pem::Pem::new(label, der)))
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
                verifier: Verifier {
                    kid: secret_kid(&secret),
                    decoding: DecodingKey::from_secret(&secret),
                    jwk: None,
                },
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
        let previous = settings
            .previous_public_key_files
            .iter()
            .filter(|path| !path.trim().is_empty())
            .map(|path| previous_verifier(alg, path.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((JwtAuthority::new(settings, keys, previous), origin))
    }

    fn new(settings: &JwtSettings, keys: Keys, previous: Vec<Verifier>) -> JwtAuthority {
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
        let mut verifiers = vec![keys.verifier];
        for key in previous {
            // The same key listed twice, or the current key listed as previous, verifies once.
            if !verifiers.iter().any(|v| v.kid == key.kid) {
                verifiers.push(key);
            }
        }
        let published: Vec<serde_json::Value> =
            verifiers.iter().filter_map(|v| v.jwk.clone()).collect();
        JwtAuthority {
            algorithm: alg,
            encoding: keys.encoding,
            kid: verifiers[0].kid.clone(),
            jwks: (!published.is_empty()).then(|| serde_json::json!({ "keys": published })),
            verifiers,
            validation,
            settings: settings.clone(),
        }
    }

    pub fn settings(&self) -> &JwtSettings {
        &self.settings
    }

    /// The public keys as a JWK Set, the signing key first, then the previous keys still
    /// accepted; `None` for HS256, whose key must never leave the server.
    pub fn jwks(&self) -> Option<&serde_json::Value> {
        self.jwks.as_ref()
    }

    pub fn mint(&self, claims: &AccessClaims) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(self.algorithm);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
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
        let key = self.check_header(token)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Invalid(e.to_string()),
            },
        )?;
        let claims = data.claims;
        let leeway = self.settings.leeway_secs as i64;
        if claims.exp <= now - leeway {
            return Err(TokenError::Expired);
        }
        if claims.nbf > now + leeway {
            return Err(TokenError::NotYetValid);
        }
        // A token dated in the future would outlive the deny-list's per-user "not before"
        // marker (compared with `iat`): revoke-all, disable, demotion and password changes.
        if claims.iat > now + leeway || claims.iat > claims.exp {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(claims)
    }

    /// Our own look at the header before the library's: it must name our token type, must
    /// not carry `crit` (RFC 7515 4.1.11: unknown critical extensions mean reject), and its
    /// `kid` must name one of the configured keys, which is the one that verifies it. The
    /// algorithm is pinned by the library's validation (`algorithms = [configured]`), and an
    /// unknown `alg` such as `none` does not even parse.
    /// Key material in the header (`jwk`, `jku`, `x5u`, `x5c`) is never consulted, and `kid`
    /// only selects among the keys configuration gave us.
    fn check_header(&self, token: &str) -> Result<&DecodingKey, TokenError> {
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
        let kid = header.get("kid").and_then(|k| k.as_str());
        self.verifiers
            .iter()
            .find(|v| Some(v.kid.as_str()) == kid)
            .map(|v| &v.decoding)
            .ok_or(TokenError::UnknownKey)
    }
}

/// A CSRF token for a refresh family: HMAC-SHA256(secret, handle), 128 bits. Stateless, tied
/// to the login, and unknowable without the server's secret.
pub fn family_csrf(secret: &[u8], handle: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, format!("csrf:{handle}").as_bytes());
    URL_SAFE_NO_PAD.encode(&tag.as_ref()[..16])
}
