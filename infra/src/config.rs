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

/// The master key: `configured` (base64 of 32 bytes, from `EVENTRA_MASTER_KEY`), or the key
/// file in `data_dir`, generated on first use with a loud warning.
pub fn master_key(
    configured: Option<&crate::Secret<String>>,
    data_dir: &std::path::Path,
) -> anyhow::Result<crate::crypto::MasterKey> {
    use anyhow::Context as _;
    if let Some(encoded) = configured {
        return crate::crypto::MasterKey::from_base64(encoded.expose())
            .context("EVENTRA_MASTER_KEY");
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

/// The token signing secret: `configured` (at least 32 bytes, from `JWT_SECRET`), or one
/// derived from a key file in `data_dir`, generated on first use. Every API instance must
/// use the same secret.
pub fn jwt_secret(
    configured: Option<&crate::Secret<String>>,
    data_dir: &std::path::Path,
) -> anyhow::Result<crate::Secret<Vec<u8>>> {
    if let Some(secret) = configured {
        if secret.expose().len() < 32 {
            anyhow::bail!("JWT_SECRET must be at least 32 bytes long");
        }
        return Ok(crate::Secret::new(secret.expose().as_bytes().to_vec()));
    }
    let (key, generated) = crate::crypto::MasterKey::load_or_generate(data_dir, "jwt.key")?;
    tracing::warn!(
        generated,
        "JWT_SECRET is not set: using a local key file; every API instance must share one secret"
    );
    Ok(crate::Secret::new(key.derive("eventra/jwt/v1").to_vec()))
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
    fn a_configured_jwt_secret_needs_32_bytes_and_is_used_as_given() {
        let dir = scratch_dir();
        let short = crate::Secret::new("s".repeat(31));
        assert!(jwt_secret(Some(&short), &dir).is_err());
        let enough = crate::Secret::new("s".repeat(32));
        assert_eq!(
            jwt_secret(Some(&enough), &dir).expect("32 bytes").expose(),
            "s".repeat(32).as_bytes()
        );
        assert!(!dir.exists(), "a configured secret writes no file");
    }

    #[test]
    fn without_configuration_both_keys_come_from_files_that_stay() {
        let dir = scratch_dir();
        let first = jwt_secret(None, &dir).expect("generated");
        let again = jwt_secret(None, &dir).expect("read back");
        assert_eq!(first.expose(), again.expose());
        assert_eq!(first.expose().len(), 32);
        let master = master_key(None, &dir).expect("generated");
        assert_eq!(master_key(None, &dir).expect("read back").id(), master.id());
        // The token secret is derived, never the key file's bytes themselves.
        let (file_key, _) =
            crate::crypto::MasterKey::load_or_generate(&dir, "jwt.key").expect("the file");
        assert_ne!(first.expose(), file_key.to_base64().as_bytes());
        let configured = crate::Secret::new(master.to_base64());
        assert_eq!(
            master_key(Some(&configured), &scratch_dir())
                .expect("configured")
                .id(),
            master.id()
        );
        assert!(master_key(Some(&crate::Secret::new("nope".into())), &dir).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
