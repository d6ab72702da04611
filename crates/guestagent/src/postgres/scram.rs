//! SCRAM-SHA-256 password verifiers computed in the agent (RFC 5802/7677, PostgreSQL's
//! `scram_build_secret`), so `CREATE ROLE … PASSWORD` carries the verifier and the plain password
//! never reaches the server: not its log, not `pg_stat_activity`, not `pg_stat_statements`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256};

/// PostgreSQL's default (`scram_iterations` is only configurable from version 16).
const ITERATIONS: u32 = 4096;

type HmacSha256 = Hmac<Sha256>;

/// The verifier PostgreSQL stores for `password` with a fresh random salt:
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`. Clients log in with the
/// password as usual; the server recognises the format and stores it as is.
pub(crate) fn verifier(password: &str) -> String {
    // A v4 UUID's 16 bytes come from the OS's random source; the salt must be unique per
    // verifier, not secret, and PostgreSQL uses 16 bytes too.
    let salt = *uuid::Uuid::new_v4().as_bytes();
    verifier_with(password, &salt, ITERATIONS)
}

fn verifier_with(password: &str, salt: &[u8], iterations: u32) -> String {
    // As PostgreSQL (and every client): SASLprep the password, or use its bytes unchanged when
    // it is not valid for SASLprep, so the keys match what a client derives at login.
    let prepared = stringprep::saslprep(password)
        .map(|p| p.into_owned())
        .unwrap_or_else(|_| password.to_owned());
    let salted = salted_password(prepared.as_bytes(), salt, iterations);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 for one 32-byte block: SCRAM's `Hi()`.
fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = Vec::with_capacity(salt.len() + 4);
    first.extend_from_slice(salt);
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_verifier_postgresql_computed() {
        // From PostgreSQL 15: CREATE ROLE r PASSWORD 'pencil', then rolpassword, whose salt is
        // reused here.
        let salt = STANDARD
            .decode("0kYZmVdLrFcKexa+xdzAkA==")
            .expect("base64 salt");
        assert_eq!(
            verifier_with("pencil", &salt, 4096),
            "SCRAM-SHA-256$4096:0kYZmVdLrFcKexa+xdzAkA==$4nZfTJe2CTuDQXJQpU9obMosO369MG8mK0DzzDiEYtM=:VHhuFwY1wd/Suiu8bQPAA1PkDKp3SYYaVswbkngDMh0="
        );
    }

    #[test]
    fn every_verifier_has_its_own_salt_and_no_trace_of_the_password() {
        let a = verifier("s3cret");
        let b = verifier("s3cret");
        assert_ne!(a, b);
        assert!(a.starts_with("SCRAM-SHA-256$4096:"), "{a}");
        assert!(!a.contains("s3cret"));
    }
}
