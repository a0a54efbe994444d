//! Personal-data encryption (crypto-shredding) and keyed hashes.
//!
//! Every data subject (a user) has an AES-256-GCM data key. Personal fields inside event
//! payloads are encrypted with it; the key itself is stored wrapped (encrypted) by the
//! master key. Destroying a subject's data key makes every copy of their personal data in
//! the immutable event log unreadable. See docs/adr/0003-crypto-shredding.md.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

use crate::migrate::hex;

const KEY_BYTES: usize = 32;
const NONCE_BYTES: usize = 12;
/// Prefix of an encrypted field value: scheme and version, then base64(nonce ‖ ciphertext).
pub const ENCRYPTED_PREFIX: &str = "pii:v1:";
/// What an erased field reads as once its key is gone.
pub const ERASED: &str = "[erased]";

#[derive(Debug, Clone, Copy, Error)]
pub enum CryptoError {
    #[error("the random number generator failed")]
    Random,
    #[error("the ciphertext is malformed or was not made with this key")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
}

/// Fills a fresh array from the operating system's random source.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|_| CryptoError::Random)?;
    Ok(bytes)
}

/// The key that wraps every data key. It never prints itself.
#[derive(Clone)]
pub struct MasterKey {
    id: String,
    key: [u8; KEY_BYTES],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// Parses a key given as base64 of 32 bytes.
    pub fn from_base64(encoded: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim()))
            .context("the master key is not valid base64")?;
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| {
            anyhow::anyhow!("the master key must be 32 bytes (44 base64 characters)")
        })?;
        Ok(Self::from_bytes(key))
    }

    pub fn from_bytes(key: [u8; KEY_BYTES]) -> Self {
        // The id names the key (for rotation) without revealing it.
        let id = hex(&Sha256::digest([b"eventra-master-key-id:".as_slice(), &key].concat())[..8]);
        MasterKey { id, key }
    }

    pub fn generate() -> Result<Self, CryptoError> {
        Ok(Self::from_bytes(random_bytes()?))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Reads the key file under `data_dir`, creating it (mode 0600) when absent.
    /// Returns the key and whether it was generated now.
    pub fn load_or_generate(data_dir: &Path, file_name: &str) -> anyhow::Result<(Self, bool)> {
        let path = data_dir.join(file_name);
        if path.exists() {
            let encoded =
                fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
            return Ok((Self::from_base64(&encoded)?, false));
        }
        fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let key = Self::generate()?;
        // The key is written in full to a file of this process's own, then linked into place:
        // the link either appears with the whole key or fails because another process's key
        // is already there, so no process ever reads a file that is still being written.
        let partial = data_dir.join(format!(".{file_name}.{}.partial", Uuid::new_v4().simple()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let written = options
            .open(&partial)
            .and_then(|mut file| {
                file.write_all(key.to_base64().as_bytes())?;
                file.sync_all()
            })
            .with_context(|| format!("writing {}", partial.display()));
        let linked =
            written.and_then(|()| fs::hard_link(&partial, &path).map_err(anyhow::Error::from));
        let _ = fs::remove_file(&partial);
        match linked {
            Ok(()) => Ok((key, true)),
            // Another process created it first: use theirs.
            Err(error)
                if error
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::AlreadyExists) =>
            {
                let encoded = fs::read_to_string(&path)?;
                Ok((Self::from_base64(&encoded)?, false))
            }
            Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// A sub-key for one purpose, so one secret never serves two algorithms.
    pub fn derive(&self, purpose: &str) -> [u8; KEY_BYTES] {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// One data subject's key.
pub struct DataKey([u8; KEY_BYTES]);

impl DataKey {
    pub fn generate() -> Result<Self, CryptoError> {
        Ok(DataKey(random_bytes()?))
    }

    /// Encrypts `plaintext`, binding it to `context` (the event and field it belongs to) so a
    /// ciphertext cannot be moved elsewhere unnoticed.
    pub fn encrypt(&self, context: &[u8], plaintext: &[u8]) -> Result<String, CryptoError> {
        let sealed = seal(&self.0, context, plaintext)?;
        Ok(format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(sealed)))
    }

    pub fn decrypt(&self, context: &[u8], value: &str) -> Result<Vec<u8>, CryptoError> {
        let encoded = value
            .strip_prefix(ENCRYPTED_PREFIX)
            .ok_or(CryptoError::Decrypt)?;
        let sealed = STANDARD.decode(encoded).map_err(|_| CryptoError::Decrypt)?;
        open(&self.0, context, &sealed)
    }
}

/// Wraps and unwraps data keys, and computes blind indexes of unique values.
#[derive(Debug, Clone)]
pub struct KeyRing {
    master: MasterKey,
    blind_index_key: [u8; KEY_BYTES],
    secrets_key: [u8; KEY_BYTES],
}

impl KeyRing {
    pub fn new(master: MasterKey) -> Self {
        let blind_index_key = master.derive("eventra/blind-index/v1");
        let secrets_key = master.derive("eventra/email-secrets/v1");
        KeyRing {
            master,
            blind_index_key,
            secrets_key,
        }
    }

    pub fn master_key_id(&self) -> &str {
        self.master.id()
    }

    pub fn wrap(&self, subject: Uuid, key: &DataKey) -> Result<Vec<u8>, CryptoError> {
        seal(&self.master.key, subject.as_bytes(), &key.0)
    }

    pub fn unwrap(&self, subject: Uuid, wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let bytes = open(&self.master.key, subject.as_bytes(), wrapped)?;
        let key: [u8; KEY_BYTES] = bytes.try_into().map_err(|_| CryptoError::Decrypt)?;
        Ok(DataKey(key))
    }

    /// Seals a one-time secret (an emailed link's token) for the short time between the
    /// command that makes it and the email that carries it, bound to `context`.
    pub fn seal_secret(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        seal(&self.secrets_key, context, plaintext)
    }

    pub fn open_secret(&self, context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(&self.secrets_key, context, sealed)
    }

    /// A keyed hash of a unique value (such as a normalised email), so uniqueness can be
    /// enforced and looked up without storing the value in clear.
    pub fn blind_index(&self, kind: &str, normalised_value: &str) -> Vec<u8> {
        self.fingerprint(kind, normalised_value.as_bytes())
    }

    /// A keyed hash (HMAC-SHA-256) of `bytes` for `kind`: what may be stored to recognise a
    /// value again without letting anyone who reads it test guesses of the value offline.
    pub fn fingerprint(&self, kind: &str, bytes: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.blind_index_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(kind.as_bytes());
        mac.update(&[0]);
        mac.update(bytes);
        mac.finalize().into_bytes().to_vec()
    }
}

fn seal(key: &[u8; KEY_BYTES], context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Encrypt)?;
    let nonce_bytes: [u8; NONCE_BYTES] = random_bytes()?;
    let nonce = Nonce::from(nonce_bytes);
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad: context,
            },
        )
        .map_err(|_| CryptoError::Encrypt)?;
    let mut sealed = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
    sealed.extend_from_slice(&nonce_bytes);
    sealed.extend_from_slice(&ciphertext);
    Ok(sealed)
}

fn open(key: &[u8; KEY_BYTES], context: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < NONCE_BYTES {
        return Err(CryptoError::Decrypt);
    }
    let (nonce_bytes, ciphertext) = sealed.split_at(NONCE_BYTES);
    let nonce_array: [u8; NONCE_BYTES] =
        nonce_bytes.try_into().map_err(|_| CryptoError::Decrypt)?;
    let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::Decrypt)?;
    cipher
        .decrypt(
            &Nonce::from(nonce_array),
            Payload {
                msg: ciphertext,
                aad: context,
            },
        )
        .map_err(|_| CryptoError::Decrypt)
}

/// The SHA-256 of a high-entropy token, hex-encoded (refresh tokens are stored only so).
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// A URL-safe random token of `N` bytes of entropy.
pub fn random_token<const N: usize>() -> Result<String, CryptoError> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes::<N>()?))
}

/// The token of a one-time link sent by email (an invitation, a password reset, an address
/// confirmation): the id of the aggregate it belongs to, a dot, and 256 random bits
/// (base64url). Only its SHA-256 is stored (ADR 0015).
pub struct LinkToken {
    pub token: String,
    pub hash: String,
}

impl LinkToken {
    pub fn new(aggregate_id: uuid::Uuid) -> Result<Self, CryptoError> {
        let token = format!("{}.{}", aggregate_id.simple(), random_token::<32>()?);
        let hash = token_hash(&token);
        Ok(LinkToken { token, hash })
    }

    /// The aggregate a presented token names, if it has the form of one.
    pub fn aggregate_of(token: &str) -> Option<uuid::Uuid> {
        let (id, random) = token.split_once('.')?;
        if id.len() != 32
            || random.len() != 43
            || !random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        uuid::Uuid::try_parse(id).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_encrypted_with_a_data_key_decrypts_only_with_the_same_key_and_context() {
        let key = DataKey::generate().expect("rng");
        let other = DataKey::generate().expect("rng");
        let sealed = key
            .encrypt(b"event-1/email", b"ada@example.com")
            .expect("encrypt");
        assert!(sealed.starts_with(ENCRYPTED_PREFIX));
        assert!(!sealed.contains("ada"));
        assert_eq!(
            key.decrypt(b"event-1/email", &sealed).expect("decrypt"),
            b"ada@example.com"
        );
        assert!(key.decrypt(b"event-2/email", &sealed).is_err());
        assert!(other.decrypt(b"event-1/email", &sealed).is_err());
    }

    #[test]
    fn a_wrapped_data_key_unwraps_only_for_its_subject() {
        let ring = KeyRing::new(MasterKey::generate().expect("rng"));
        let subject = Uuid::new_v4();
        let key = DataKey::generate().expect("rng");
        let wrapped = ring.wrap(subject, &key).expect("wrap");
        let unwrapped = ring.unwrap(subject, &wrapped).expect("unwrap");
        assert_eq!(unwrapped.0, key.0);
        assert!(ring.unwrap(Uuid::new_v4(), &wrapped).is_err());
    }

    fn scratch_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("eventra-keys-{}", Uuid::new_v4().simple()))
    }

    #[test]
    fn a_generated_master_key_is_kept_private_and_read_back_unchanged() {
        let dir = scratch_dir();
        let (key, generated) = MasterKey::load_or_generate(&dir, "master.key").expect("generate");
        assert!(generated);
        let path = dir.join("master.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only the owner may read the key file");
        }
        let (again, generated) = MasterKey::load_or_generate(&dir, "master.key").expect("read");
        assert!(!generated, "an existing key is never replaced");
        assert_eq!(again.id(), key.id());
        assert_eq!(again.to_base64(), key.to_base64());
        // What the first key wrapped, the key read back opens.
        let subject = Uuid::new_v4();
        let data_key = DataKey::generate().expect("rng");
        let wrapped = KeyRing::new(key).wrap(subject, &data_key).expect("wrap");
        assert_eq!(
            KeyRing::new(again)
                .unwrap(subject, &wrapped)
                .expect("unwrap")
                .0,
            data_key.0
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn processes_generating_a_master_key_at_once_all_use_one_key() {
        let dir = scratch_dir();
        let ids: Vec<String> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        MasterKey::load_or_generate(&dir, "master.key")
                            .expect("load or generate")
                            .0
                            .id()
                            .to_owned()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("thread"))
                .collect()
        });
        assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{ids:?}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_damaged_key_file_or_a_short_key_is_refused_not_replaced() {
        let dir = scratch_dir();
        fs::create_dir_all(&dir).expect("dir");
        fs::write(dir.join("master.key"), "not base64 at all!").expect("write");
        assert!(MasterKey::load_or_generate(&dir, "master.key").is_err());
        assert_eq!(
            fs::read_to_string(dir.join("master.key")).expect("read"),
            "not base64 at all!",
            "a damaged key is left for the operator, never overwritten"
        );
        assert!(MasterKey::from_base64(&STANDARD.encode([7u8; 16])).is_err());
        assert!(MasterKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
        assert_ne!(
            MasterKey::from_bytes([1; 32]).id(),
            MasterKey::from_bytes([2; 32]).id()
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn sealed_values_too_short_or_tampered_are_refused_without_panicking() {
        let key = DataKey::generate().expect("rng");
        for length in [0, 1, NONCE_BYTES - 1, NONCE_BYTES, NONCE_BYTES + 15] {
            let value = format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(vec![7u8; length]));
            assert!(key.decrypt(b"ctx", &value).is_err(), "{length} bytes");
        }
        let sealed = key.encrypt(b"ctx", b"secret").expect("encrypt");
        let mut bytes = STANDARD
            .decode(sealed.trim_start_matches(ENCRYPTED_PREFIX))
            .expect("base64");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{ENCRYPTED_PREFIX}{}", STANDARD.encode(&bytes));
        assert!(key.decrypt(b"ctx", &tampered).is_err());
        assert!(key.decrypt(b"ctx", "not sealed at all").is_err());
    }

    #[test]
    fn token_hashes_are_sha256_and_random_tokens_are_long_and_distinct() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let (a, b) = (
            random_token::<32>().expect("rng"),
            random_token::<32>().expect("rng"),
        );
        assert_eq!(a.len(), 43, "256 bits, URL-safe base64 without padding");
        assert_ne!(a, b);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn a_master_key_prints_its_id_never_itself() {
        let key = MasterKey::from_bytes([9; 32]);
        let printed = format!("{key:?}");
        assert_eq!(printed, format!("MasterKey({})", key.id()));
        assert!(!printed.contains(&key.to_base64()));
        let ring = KeyRing::new(key.clone());
        assert_eq!(ring.master_key_id(), key.id());
        assert_eq!(key.id().len(), 16, "eight bytes of a digest, in hex");
    }

    #[test]
    fn blind_indexes_are_stable_per_master_key_and_differ_between_keys() {
        let master = MasterKey::generate().expect("rng");
        let ring = KeyRing::new(master.clone());
        let again = KeyRing::new(MasterKey::from_base64(&master.to_base64()).expect("parse"));
        let other = KeyRing::new(MasterKey::generate().expect("rng"));
        assert_eq!(
            ring.blind_index("email", "a@b.co"),
            again.blind_index("email", "a@b.co")
        );
        assert_ne!(
            ring.blind_index("email", "a@b.co"),
            other.blind_index("email", "a@b.co")
        );
        assert_ne!(
            ring.blind_index("email", "a@b.co"),
            ring.blind_index("phone", "a@b.co")
        );
    }
}
