//! Reading configuration from environment variables.

/// The variable's value, if set and not blank.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The variable parsed, or `default` parsed when unset; a clear error names the variable.
pub fn parse<T: std::str::FromStr>(name: &str, default: &str) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    let raw = var(name).unwrap_or_else(|| default.to_owned());
    raw.trim()
        .parse()
        .map_err(|e| anyhow::anyhow!("{name}={raw:?} is not valid: {e}"))
}

/// `EVENTRA_DEV=1` (or `true`): a development machine, where a process without configured
/// keys may keep its own in key files in its data dir. `./scripts/start` sets it.
pub fn dev_mode() -> bool {
    var("EVENTRA_DEV").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The master key: `configured` (base64 of 32 bytes, from `EVENTRA_MASTER_KEY`), or — only
/// in `dev` mode — the key file in `data_dir`, generated on first use with a loud warning.
/// Elsewhere a missing key is an error: two processes (or a container without a volume)
/// each generating their own would seal personal data no other process can open.
pub fn master_key(
    configured: Option<&crate::Secret<String>>,
    data_dir: &std::path::Path,
    dev: bool,
) -> anyhow::Result<crate::crypto::MasterKey> {
    use anyhow::Context as _;
    if let Some(encoded) = configured {
        return crate::crypto::MasterKey::from_base64(encoded.expose())
            .context("EVENTRA_MASTER_KEY");
    }
    if !dev {
        anyhow::bail!(
            "EVENTRA_MASTER_KEY is not set. Set it to the base64 of 32 random bytes \
             (`openssl rand -base64 32`), the same for every process, kept apart from the \
             database; or set EVENTRA_DEV=1 on a development machine to keep a key file in \
             the data directory"
        );
    }
    let (key, generated) = crate::crypto::MasterKey::load_or_generate(data_dir, "master.key")?;
    tracing::warn!(
        path = %data_dir.join("master.key").display(),
        generated,
        "EVENTRA_MASTER_KEY is not set: using a local key file. Losing it makes all personal \
         data unreadable; set EVENTRA_MASTER_KEY from a secret store in production"
    );
    Ok(key)
}

/// The key that signs access tokens: `configured` (`JWT_SIGNING_KEY`: the base64 of a 32-byte
/// Ed25519 seed, or a PKCS#8 PEM), or — only in `dev` mode — a key file in `data_dir`,
/// generated on first use. Only the command API signs; verifiers need no secret at all.
pub fn signing_key(
    configured: Option<&crate::Secret<String>>,
    data_dir: &std::path::Path,
    dev: bool,
) -> anyhow::Result<crate::tokens::SigningKey> {
    if let Some(key) = configured {
        return crate::tokens::SigningKey::parse(key.expose())
            .map_err(|e| anyhow::anyhow!("JWT_SIGNING_KEY: {e}"));
    }
    if !dev {
        anyhow::bail!(
            "JWT_SIGNING_KEY is not set. Set it to an Ed25519 private key: the base64 of 32 \
             random bytes (`openssl rand -base64 32`) or a PEM from `openssl genpkey -algorithm \
             ed25519`, kept apart from the database; or set EVENTRA_DEV=1 on a development \
             machine to keep a key file in the data directory"
        );
    }
    let (seed, generated) =
        crate::crypto::MasterKey::load_or_generate(data_dir, "token-signing.key")?;
    let key = crate::tokens::SigningKey::parse(&seed.to_base64())?;
    tracing::warn!(
        generated,
        kid = key.kid(),
        "JWT_SIGNING_KEY is not set: signing access tokens with a local key file"
    );
    Ok(key)
}

/// Refuses a master key other than the one the stored data keys are wrapped under: a
/// process started with the wrong key (a typo, another environment's secret, a regenerated
/// key file) would seal new personal data under it and open none of the old.
pub async fn check_master_key(
    pool: &deadpool_postgres::Pool,
    keys: &crate::crypto::KeyRing,
) -> anyhow::Result<()> {
    let client = pool.get().await?;
    let stored = client
        .query_opt("SELECT master_key_id FROM data_keys LIMIT 1", &[])
        .await?;
    if let Some(row) = stored {
        let stored: String = row.get(0);
        if stored != keys.master_key_id() {
            anyhow::bail!(
                "EVENTRA_MASTER_KEY is not the key this database's personal data is sealed \
                 under (the data keys name master key {stored}, the configured key is {}); \
                 refusing to start rather than seal new data under another key",
                keys.master_key_id()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch_dir() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("eventra-config-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn a_variable_is_read_unless_blank_and_parsed_with_its_name_in_the_error() {
        assert!(var("PATH").is_some(), "PATH is set for every test run");
        assert_eq!(var("EVENTRA_CONFIG_TEST_SURELY_UNSET"), None);
        assert_eq!(
            parse::<u32>("EVENTRA_CONFIG_TEST_SURELY_UNSET", " 42 ").expect("the default"),
            42
        );
        let error = parse::<u32>("PATH", "1").expect_err("PATH is no number");
        assert!(error.to_string().starts_with("PATH="), "{error}");
    }

    #[test]
    fn a_configured_signing_key_must_be_an_ed25519_key_and_writes_no_file() {
        let dir = scratch_dir();
        let short = crate::Secret::new("c2hvcnQ=".to_owned());
        let error = signing_key(Some(&short), &dir, true).expect_err("too short");
        assert!(
            error.to_string().starts_with("JWT_SIGNING_KEY: "),
            "{error}"
        );
        let seed = crate::Secret::new(
            crate::crypto::MasterKey::generate()
                .expect("rng")
                .to_base64(),
        );
        let key = signing_key(Some(&seed), &dir, false).expect("32 bytes");
        assert_eq!(
            key.kid(),
            crate::tokens::SigningKey::parse(seed.expose())
                .expect("the same")
                .kid()
        );
        assert!(!dir.exists(), "a configured key writes no file");
    }

    #[test]
    fn without_configuration_outside_dev_mode_neither_key_is_made_up() {
        let dir = scratch_dir();
        let error = master_key(None, &dir, false).expect_err("no key");
        assert!(
            error.to_string().contains("EVENTRA_MASTER_KEY is not set"),
            "{error}"
        );
        assert!(error.to_string().contains("EVENTRA_DEV=1"), "{error}");
        let error = signing_key(None, &dir, false).expect_err("no key");
        assert!(
            error.to_string().contains("JWT_SIGNING_KEY is not set"),
            "{error}"
        );
        assert!(!dir.exists(), "no key file was written");
    }

    #[test]
    fn without_configuration_in_dev_mode_both_keys_come_from_files_that_stay() {
        let dir = scratch_dir();
        let first = signing_key(None, &dir, true).expect("generated");
        let again = signing_key(None, &dir, true).expect("read back");
        assert_eq!(first.kid(), again.kid());
        let master = master_key(None, &dir, true).expect("generated");
        assert_eq!(
            master_key(None, &dir, true).expect("read back").id(),
            master.id()
        );
        assert_ne!(first.kid(), master.id(), "two keys, two files");
        let configured = crate::Secret::new(master.to_base64());
        assert_eq!(
            master_key(Some(&configured), &scratch_dir(), false)
                .expect("configured")
                .id(),
            master.id()
        );
        assert!(master_key(Some(&crate::Secret::new("nope".into())), &dir, true).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
