//! Secrets in messages, sealed for their one receiver: key pairs and their files, sealing and
//! opening, and the wire form of a sealed value.
//!
//! A sealed value is libsodium's sealed box (`crypto_box_seal`: an ephemeral X25519 key agreed
//! with the receiver's public key, then XSalsa20-Poly1305). Only the holder of the receiver's
//! private key can open it, so the `outbox` table and the broker only ever hold ciphertext.
//! Each sealed value is bound to a context (what it is and which instance and user it belongs
//! to): the receiver names the context it expects, so a value cut from one message and pasted
//! into another does not open. A sealed box does not say who sealed it; who may send a message
//! at all is the broker's business (docs/architecture.md, "Secrets in messages").

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
    str::FromStr,
};

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use crypto_box::aead::OsRng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use zeroize::Zeroize;

/// Bytes a sealed box adds to its plaintext: the ephemeral public key and the tag.
const OVERHEAD: usize = crypto_box::SEALBYTES;

/// Largest sealed value accepted off the wire (a password is far smaller); bounds the work a
/// hostile message can cause.
const MAX_SEALED_BYTES: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "key file {} is readable or writable by group or others (mode {mode:04o}); it must be 0600",
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {} does not hold a base64 X25519 private key", path.display())]
    BadKeyFile { path: PathBuf },
    #[error("not a public key: {0}")]
    BadPublicKey(&'static str),
    #[error("not a sealed value: {0}")]
    Malformed(&'static str),
    /// Deliberately says nothing about the plaintext or why: wrong key, tampering and a context
    /// mismatch look the same to whoever reads the error.
    #[error("the sealed value does not open with this key (sealed for another key, or altered)")]
    Open,
}

/// A secret in clear, only ever in memory: no `Serialize`, no `Display`, a redacted `Debug`, and
/// wiped when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The clear text, for the one call that needs it (setting the role's password).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// What a sealed user password belongs to: a value sealed for one instance's user opens for
/// that instance and user only.
pub fn user_password_context(instance_id: Uuid, user: &str) -> String {
    format!("trove/user-password/{instance_id}/{user}")
}

/// A receiver's public key; text form is base64 of its 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(crypto_box::PublicKey);

impl PublicKey {
    /// Seals `secret` so that only the holder of this key's private half can open it, and only
    /// when it names the same `context`.
    pub fn seal(&self, context: &str, secret: &Password) -> Sealed {
        let mut plain = framed(context, secret.expose());
        let sealed = self
            .0
            .seal(&mut OsRng, &plain)
            .expect("sealing to a valid public key cannot fail");
        plain.zeroize();
        Sealed(sealed)
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0.as_bytes())
    }
}

/// `context`, a NUL, then the secret. The receiver knows the context it expects, so the split
/// is unambiguous whatever the secret holds.
fn framed(context: &str, secret: &str) -> Vec<u8> {
    let mut plain = Vec::with_capacity(context.len() + 1 + secret.len());
    plain.extend_from_slice(context.as_bytes());
    plain.push(0);
    plain.extend_from_slice(secret.as_bytes());
    plain
}

impl FromStr for PublicKey {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Self, SecretError> {
        let bytes = B64
            .decode(s.trim())
            .map_err(|_| SecretError::BadPublicKey("not base64"))?;
        let bytes: [u8; crypto_box::KEY_SIZE] = bytes
            .try_into()
            .map_err(|_| SecretError::BadPublicKey("not 32 bytes"))?;
        // A point of small order makes the shared secret a constant anyone can compute, so
        // sealing to it would be sealing in clear (e.g. an all-zero key left in a config).
        let point = curve25519_dalek::montgomery::MontgomeryPoint(bytes);
        if point * curve25519_dalek::Scalar::from(8u8)
            == curve25519_dalek::montgomery::MontgomeryPoint([0; 32])
        {
            return Err(SecretError::BadPublicKey("a point of small order"));
        }
        Ok(Self(crypto_box::PublicKey::from(bytes)))
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A receiver's private key. Its file holds base64 of the 32 bytes and must be mode 0600.
pub struct SecretKey(crypto_box::SecretKey);

impl SecretKey {
    pub fn generate() -> Self {
        Self(crypto_box::SecretKey::generate(&mut OsRng))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.public_key())
    }

    /// Opens `sealed`, which must have been sealed for this key with the same `context`.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Password, SecretError> {
        let mut plain = self.0.unseal(&sealed.0).map_err(|_| SecretError::Open)?;
        let prefix = framed(context, "");
        let result = if plain.starts_with(&prefix) {
            String::from_utf8(plain[prefix.len()..].to_vec())
                .map(Password)
                .map_err(|e| {
                    let mut bytes = e.into_bytes();
                    bytes.zeroize();
                    SecretError::Open
                })
        } else {
            Err(SecretError::Open)
        };
        plain.zeroize();
        result
    }

    /// Reads a key file, refusing one that group or others could read.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        use std::os::unix::fs::PermissionsExt;
        let read_err = |source| SecretError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SecretError::Permissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        let mut text = std::fs::read_to_string(path).map_err(read_err)?;
        let bad = || SecretError::BadKeyFile {
            path: path.to_path_buf(),
        };
        let decoded = B64.decode(text.trim()).map_err(|_| bad());
        text.zeroize();
        let mut bytes = decoded?;
        let key = crypto_box::SecretKey::from_slice(&bytes).map_err(|_| bad());
        bytes.zeroize();
        Ok(Self(key?))
    }

    /// Writes this key to a new file created with mode 0600; never overwrites one.
    pub fn write_new(&self, path: &Path) -> Result<(), SecretError> {
        use std::os::unix::fs::OpenOptionsExt;
        let write_err = |source| SecretError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(write_err)?;
        let mut text = B64.encode(self.0.to_bytes());
        text.push('\n');
        let written = file
            .write_all(text.as_bytes())
            .and_then(|()| file.sync_all());
        text.zeroize();
        written.map_err(write_err)
    }

    /// The key in `path`, generated there first (mode 0600, parent directory 0700 when it has to
    /// be made) if the file does not exist. For guest hosts, whose public key travels in their
    /// heartbeat.
    pub fn load_or_generate(path: &Path) -> Result<Self, SecretError> {
        if !path.exists() {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
                && !parent.exists()
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)
                    .map_err(|source| SecretError::Write {
                        path: parent.to_path_buf(),
                        source,
                    })?;
            }
            match Self::generate().write_new(path) {
                Ok(()) => tracing::info!(path = %path.display(), "generated a new key pair"),
                // Another process made it first: use theirs.
                Err(SecretError::Write { source, .. })
                    if source.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        Self::load(path)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A secret sealed for one receiver, as it travels: `{"sealed": "<base64>"}`. A bare string
/// (a password in clear) does not deserialize, and the refusal does not echo it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(Vec<u8>);

impl Sealed {
    /// A sealed value from its base64 text, checked for shape only (it may still not open).
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        if text.len() > MAX_SEALED_BYTES.div_ceil(3) * 4 {
            return Err(SecretError::Malformed("too long"));
        }
        let bytes = B64
            .decode(text)
            .map_err(|_| SecretError::Malformed("not base64"))?;
        if bytes.len() <= OVERHEAD {
            return Err(SecretError::Malformed("too short to be a sealed box"));
        }
        Ok(Self(bytes))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(&self.0)
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

#[derive(Serialize)]
struct SealedWire<'a> {
    sealed: &'a str,
}

impl Serialize for Sealed {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        SealedWire {
            sealed: &self.to_base64(),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Sealed {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SealedVisitor)
    }
}

/// Accepts only `{"sealed": "<base64>"}`. Every refusal is a fixed text: serde's own errors quote
/// the value they got, and that value may be a password in clear on its way to a log.
struct SealedVisitor;

const REFUSE_CLEAR: &str = "a secret in clear text is refused: it must be sealed for its receiver ({\"sealed\": \"<base64>\"})";

impl<'de> serde::de::Visitor<'de> for SealedVisitor {
    type Value = Sealed;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sealed secret {\"sealed\": \"<base64>\"}")
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Sealed, E> {
        Err(E::custom(REFUSE_CLEAR))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Sealed, A::Error> {
        use serde::de::Error;
        let mut sealed = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "sealed" || sealed.is_some() {
                return Err(A::Error::custom(
                    "a sealed secret has exactly one key, \"sealed\"",
                ));
            }
            let text: String = map
                .next_value()
                .map_err(|_| A::Error::custom("\"sealed\" must be a base64 string"))?;
            sealed = Some(Sealed::from_base64(&text).map_err(|e| A::Error::custom(e.to_string()))?);
        }
        sealed.ok_or_else(|| A::Error::custom("a sealed secret needs \"sealed\""))
    }

    // Anything else gets the same fixed text, without the value.
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Sealed, E> {
        Err(E::custom(REFUSE_CLEAR))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Sealed, E> {
        Err(E::custom(REFUSE_CLEAR))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Sealed, E> {
        Err(E::custom(REFUSE_CLEAR))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Sealed, E> {
        Err(E::custom(REFUSE_CLEAR))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Sealed, E> {
        Err(E::custom(REFUSE_CLEAR))
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, _: A) -> Result<Sealed, A::Error> {
        Err(serde::de::Error::custom(REFUSE_CLEAR))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "trove/user-password/00000000-0000-0000-0000-000000000001/app";

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("trove-secrets-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir.join(name)
    }

    #[test]
    fn a_sealed_secret_opens_with_its_key_and_context() {
        let key = SecretKey::generate();
        let sealed = key
            .public_key()
            .seal(CONTEXT, &Password::new("correct horse"));
        let opened = key.open(CONTEXT, &sealed).expect("opens");
        assert_eq!(opened.expose(), "correct horse");
        // Two seals of the same secret differ: nothing on the wire says two passwords match.
        let again = key
            .public_key()
            .seal(CONTEXT, &Password::new("correct horse"));
        assert_ne!(sealed, again);
    }

    #[test]
    fn another_key_cannot_open_it() {
        let sealed = SecretKey::generate()
            .public_key()
            .seal(CONTEXT, &Password::new("s3cret"));
        assert!(matches!(
            SecretKey::generate().open(CONTEXT, &sealed),
            Err(SecretError::Open)
        ));
    }

    #[test]
    fn a_tampered_sealed_value_is_refused() {
        let key = SecretKey::generate();
        let sealed = key.public_key().seal(CONTEXT, &Password::new("s3cret"));
        for at in [0, OVERHEAD - 1, sealed.0.len() - 1] {
            let mut bent = sealed.clone();
            bent.0[at] ^= 0x01;
            assert!(
                matches!(key.open(CONTEXT, &bent), Err(SecretError::Open)),
                "flipping byte {at}"
            );
        }
        let mut cut = sealed.clone();
        cut.0.truncate(OVERHEAD + 1);
        assert!(matches!(key.open(CONTEXT, &cut), Err(SecretError::Open)));
    }

    #[test]
    fn a_value_moved_to_another_context_is_refused() {
        let key = SecretKey::generate();
        let sealed = key.public_key().seal(CONTEXT, &Password::new("s3cret"));
        let other = user_password_context(Uuid::from_u128(2), "app");
        assert!(matches!(key.open(&other, &sealed), Err(SecretError::Open)));
        assert!(matches!(
            key.open(&format!("{CONTEXT}x"), &sealed),
            Err(SecretError::Open)
        ));
    }

    #[test]
    fn the_wire_form_is_an_object_and_clear_text_is_refused_without_echo() {
        let key = SecretKey::generate();
        let sealed = key.public_key().seal(CONTEXT, &Password::new("hunter2"));
        let json = serde_json::to_value(&sealed).expect("serializes");
        assert_eq!(json["sealed"].as_str(), Some(sealed.to_base64().as_str()));
        let back: Sealed = serde_json::from_value(json).expect("deserializes");
        assert_eq!(back, sealed);

        for clear in [
            serde_json::json!("hunter2"),
            serde_json::json!({"sealed": "hunter2"}),
            serde_json::json!({"password": "hunter2"}),
            serde_json::json!(["hunter2"]),
            serde_json::json!({"sealed": 12345678}),
        ] {
            let err = serde_json::from_value::<Sealed>(clear.clone())
                .expect_err("clear text must be refused")
                .to_string();
            assert!(!err.contains("hunter2"), "{clear} refused as {err}");
            assert!(!err.contains("12345678"), "{clear} refused as {err}");
        }
    }

    #[test]
    fn debug_never_shows_a_secret() {
        let key = SecretKey::generate();
        let password = Password::new("hunter2");
        assert!(!format!("{password:?}").contains("hunter2"));
        let shown = format!("{key:?}");
        assert!(shown.contains("redacted"), "{shown}");
        assert!(!shown.contains(&B64.encode(key.0.to_bytes())));
    }

    #[test]
    fn public_keys_round_trip_as_base64_and_weak_ones_are_refused() {
        let public = SecretKey::generate().public_key();
        let back: PublicKey = public.to_base64().parse().expect("parses");
        assert_eq!(back, public);
        assert!("not base64!".parse::<PublicKey>().is_err());
        assert!(B64.encode([7u8; 16]).parse::<PublicKey>().is_err());
        // All zero and the other small-order points would make the seal a known key.
        assert!(B64.encode([0u8; 32]).parse::<PublicKey>().is_err());
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(B64.encode(one).parse::<PublicKey>().is_err());
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_path("k.key");
        let key = SecretKey::load_or_generate(&path).expect("generates");
        let mode = std::fs::metadata(&path)
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = SecretKey::load_or_generate(&path).expect("loads");
        assert_eq!(again.public_key(), key.public_key());
        assert!(matches!(
            SecretKey::generate().write_new(&path),
            Err(SecretError::Write { .. })
        ));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            SecretKey::load(&path),
            Err(SecretError::Permissions { mode: 0o644, .. })
        ));

        let garbage = temp_path("g.key");
        std::fs::write(&garbage, "not a key\n").expect("write");
        std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(matches!(
            SecretKey::load(&garbage),
            Err(SecretError::BadKeyFile { .. })
        ));
        let _ = std::fs::remove_dir_all(path.parent().expect("has a parent"));
        let _ = std::fs::remove_dir_all(garbage.parent().expect("has a parent"));
    }
}
