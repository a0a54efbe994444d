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
