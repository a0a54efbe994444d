//! The zero-configuration mailer's files (`EVENTRA_DATA_DIR/mail/`): readable by the
//! projector's user only (files 0600 in a 0700 directory), and kept for
//! `EMAIL_FILE_RETENTION_HOURS` only — a mail file holds an address, a name and often a
//! one-time link.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

/// Writes the job's message as `<job id>.eml`, atomically (a re-send after a crash
/// overwrites the same file: one file per job).
pub fn write(dir: &Path, job_id: Uuid, formatted: &[u8]) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // A directory made before (or by someone else) is closed to others too.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let partial = dir.join(format!(".{job_id}.eml.partial"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)?;
    file.write_all(formatted)?;
    file.sync_all()?;
    std::fs::rename(&partial, dir.join(format!("{job_id}.eml")))
}

/// Deletes the mail files older than `retention`; how many went.
pub fn forget_older_than(dir: &Path, retention: Duration) -> std::io::Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(0);
    };
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let is_mail = name
            .to_str()
            .is_some_and(|n| n.ends_with(".eml") || n.ends_with(".eml.partial"));
        let modified = entry.metadata()?.modified()?;
        if is_mail && modified < cutoff {
            std::fs::remove_file(entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_files_are_the_projectors_alone_and_old_ones_are_forgotten() {
        let dir = std::env::temp_dir()
            .join(format!("eventra-mail-{}", Uuid::new_v4().simple()))
            .join("mail");
        let (old, new) = (Uuid::new_v4(), Uuid::new_v4());
        write(&dir, old, b"Subject: old").expect("write");
        write(&dir, new, b"Subject: new").expect("write");
        let mode = |path: &Path| {
            std::fs::metadata(path)
                .expect("metadata")
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(format!("{new}.eml"))), 0o600);
        let file = std::fs::File::options()
            .write(true)
            .open(dir.join(format!("{old}.eml")))
            .expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(8 * 24 * 3600))
            .expect("backdate");
        assert_eq!(
            forget_older_than(&dir, Duration::from_secs(7 * 24 * 3600)).expect("sweep"),
            1
        );
        assert!(!dir.join(format!("{old}.eml")).exists());
        assert!(dir.join(format!("{new}.eml")).exists());
        let _ = std::fs::remove_dir_all(dir.parent().expect("parent"));
    }
}
