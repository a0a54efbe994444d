//! Authentication: password hashing, refresh-token names, and the per-request check both
//! APIs make against the authentication state (access tokens are in [`crate::tokens`]).

use anyhow::Context as _;
use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, Version};
use deadpool_postgres::ClientWrapper as Client;
use domain::Role;
use thiserror::Error;
use uuid::Uuid;

use crate::crypto::{random_bytes, random_token};
use crate::tokens::AccessClaims;

/// Argon2id parameters. The defaults are OWASP's recommendation (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for PasswordParams {
    fn default() -> Self {
        PasswordParams {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashes and verifies passwords with Argon2id. Both are CPU-bound and slow by design:
/// call them from a blocking thread, not from the async executor.
#[derive(Clone)]
pub struct PasswordHashing {
    argon2: Argon2<'static>,
    /// A real hash of a random password, verified against when the account does not exist
    /// so that an unknown email costs the same time as a wrong password.
    dummy_hash: String,
}

impl PasswordHashing {
    pub fn new(params: PasswordParams) -> anyhow::Result<Self> {
        let params = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(|e| anyhow::anyhow!("invalid Argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = random_token::<16>().context("generating the dummy password")?;
        let dummy_hash = argon2
            .hash_password(dummy.as_bytes())
            .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e}"))?
            .to_string();
        Ok(PasswordHashing { argon2, dummy_hash })
    }

    /// A PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of `password` with a fresh
    /// random salt.
    pub fn hash(&self, password: &str) -> anyhow::Result<String> {
        let salt = random_bytes::<16>().context("generating a salt")?;
        let mut output = [0u8; Params::DEFAULT_OUTPUT_LEN];
        with_reused_memory(&self.argon2, password.as_bytes(), &salt, &mut output)
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
        let phc = |e: argon2::password_hash::phc::Error| anyhow::anyhow!("encoding a hash: {e}");
        Ok(PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(self.argon2.params())
                .map_err(|e| anyhow::anyhow!("encoding the parameters: {e}"))?,
            salt: Some(Salt::new(&salt).map_err(phc)?),
            hash: Some(Output::new(&output).map_err(phc)?),
        }
        .to_string())
    }

    /// True when `password` matches `hash`, with the algorithm, version and parameters the
    /// hash names. A malformed hash never matches.
    pub fn verify(&self, password: &str, hash: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(hash) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from).transpose() {
            Ok(version) => version.unwrap_or_default(),
            Err(_) => return false,
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        // A stored hash naming more memory than this service would ever configure is not
        // one it made; refuse it rather than allocate it.
        if params.m_cost() > MAX_MEMORY_KIB {
            return false;
        }
        let argon2 = Argon2::new(algorithm, version, params);
        let mut output = vec![0u8; expected.len()];
        if with_reused_memory(&argon2, password.as_bytes(), salt, &mut output).is_err() {
            return false;
        }
        // `Output`'s equality is constant-time.
        Output::new(&output).is_ok_and(|computed| computed == *expected)
    }

    /// Spends the time of one verification, for accounts that do not exist.
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, &self.dummy_hash);
    }
}

/// The most memory a stored hash may ask for (1 GiB).
const MAX_MEMORY_KIB: u32 = 1 << 20;

thread_local! {
    /// The Argon2 working memory of this thread, reused from hash to hash. Allocating it for
    /// every hash (19 MiB with the default parameters) left freed blocks scattered across the
    /// allocator's arenas: the command API kept over 300 MB resident after a few logins.
    static MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_reused_memory(
    argon2: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    output: &mut [u8],
) -> Result<(), argon2::Error> {
    MEMORY.with_borrow_mut(|blocks| {
        let needed = argon2.params().block_count();
        if blocks.len() < needed {
            *blocks = vec![argon2::Block::default(); needed];
        }
        argon2.hash_password_into_with_memory(password, salt, output, &mut blocks[..needed])
    })
}

/// The session id a refresh token names, if it is well-formed.
pub fn refresh_token_session(token: &str) -> Option<Uuid> {
    let (session, secret) = token.split_once('.')?;
    if secret.len() != 43
        || !secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return None;
    }
    Uuid::try_parse(session).ok()
}

/// An authenticated caller, as the authentication state sees them now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    pub role: Role,
    pub platform_admin: bool,
}

#[derive(Debug, Error)]
pub enum AuthenticationError {
    #[error("the session has ended or the account is not active")]
    Rejected,
    #[error(transparent)]
    Database(#[from] tokio_postgres::Error),
}

/// Checks verified claims against the authentication state: the session must be open and
/// the user active. One indexed query, so a revocation or deactivation is effective on the
/// next request after it commits. Also answers until when the session lasts.
pub async fn authenticate(
    client: &Client,
    claims: &AccessClaims,
) -> Result<(Principal, chrono::DateTime<chrono::Utc>), AuthenticationError> {
    // Every request does this: a cached statement (one round trip, planned once).
    let statement = client
        .prepare_cached(
            "SELECT p.role, p.platform_admin, s.expires_at
               FROM auth_sessions s JOIN auth_principals p ON p.user_id = s.user_id
              WHERE s.session_id = $1 AND s.user_id = $2 AND s.tenant_id = $3
                AND s.revoked_at IS NULL AND s.expires_at > now() AND p.status = 'active'",
        )
        .await?;
    let row = client
        .query_opt(&statement, &[&claims.sid, &claims.sub, &claims.tid])
        .await?
        .ok_or(AuthenticationError::Rejected)?;
    let role: String = row.get(0);
    let principal = Principal {
        user_id: claims.sub,
        tenant_id: claims.tid,
        session_id: claims.sid,
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::Member
        },
        platform_admin: row.get(1),
    };
    Ok((principal, row.get(2)))
}

type HashingJob = Box<dyn FnOnce(&PasswordHashing) + Send>;

/// A few long-lived threads (one per core) that do all password hashing. Argon2 is
/// CPU-bound and takes 19 MiB per hash: more hashes at once add no throughput, and hashing on
/// ever-changing threads leaves freed 19 MiB blocks in many allocator arenas (a process that
/// served a burst of logins kept over 1 GiB resident). Here each thread reuses its own.
pub struct HashingPool {
    jobs: std::sync::mpsc::Sender<HashingJob>,
    threads: usize,
}

impl HashingPool {
    pub fn new(hashing: PasswordHashing, threads: usize) -> anyhow::Result<Self> {
        let (jobs, queue) = std::sync::mpsc::channel::<HashingJob>();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(queue));
        let hashing = std::sync::Arc::new(hashing);
        let threads = threads.max(1);
        for n in 0..threads {
            let (queue, hashing) = (
                std::sync::Arc::clone(&queue),
                std::sync::Arc::clone(&hashing),
            );
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || {
                    loop {
                        let job = {
                            let queue = queue
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner);
                            match queue.recv() {
                                Ok(job) => job,
                                Err(_) => return, // The pool was dropped.
                            }
                        };
                        job(&hashing);
                    }
                })
                .context("starting a password-hashing thread")?;
        }
        Ok(HashingPool { jobs, threads })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `work` on a hashing thread (waiting for a free one) and returns its result.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&PasswordHashing) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |hashing| {
                let _ = answer.send(work(hashing));
            }))
            .map_err(|_| anyhow::anyhow!("the password-hashing threads have stopped"))?;
        answered
            .await
            .map_err(|_| anyhow::anyhow!("a password-hashing thread stopped mid-job"))
    }
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    fn small() -> PasswordHashing {
        PasswordHashing::new(PasswordParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        })
        .expect("parameters")
    }

    #[test]
    fn a_hash_verifies_with_its_password_only() {
        let hashing = small();
        let hash = hashing.hash("correct horse").expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{hash}");
        assert!(hashing.verify("correct horse", &hash));
        assert!(!hashing.verify("correct horsE", &hash));
        assert_ne!(hash, hashing.hash("correct horse").expect("hash"), "salted");
    }

    #[test]
    fn hashes_agree_with_the_argon2_reference_in_both_directions() {
        let hashing = small();
        let reference = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(64, 1, 1, None).expect("params"),
        );
        // Made by the library's own allocating path, verified with reused memory.
        let theirs = reference
            .hash_password(b"battery staple")
            .expect("hash")
            .to_string();
        assert!(hashing.verify("battery staple", &theirs));
        assert!(!hashing.verify("battery stapler", &theirs));
        // Made with reused memory, verified by the library.
        let ours = hashing.hash("battery staple").expect("hash");
        let parsed = PasswordHash::new(&ours).expect("a PHC string");
        assert!(
            reference
                .verify_password(b"battery staple", &parsed)
                .is_ok()
        );
        // Hashes with other parameters (a configuration change) still verify.
        let bigger = PasswordHashing::new(PasswordParams {
            memory_kib: 256,
            iterations: 2,
            parallelism: 2,
        })
        .expect("parameters")
        .hash("battery staple")
        .expect("hash");
        assert!(hashing.verify("battery staple", &bigger));
    }

    #[test]
    fn malformed_or_greedy_hashes_never_match() {
        let hashing = small();
        for hash in [
            "",
            "plain text",
            "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$",
            "$scrypt$ln=4,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNo",
        ] {
            assert!(!hashing.verify("anything", hash), "{hash}");
        }
    }
}
