//! Owner-only directories (0700) and files (0600) for everything hooktunnel
//! writes: the history holds captured `Authorization` headers and cookies,
//! the config holds tokens and keys. Modes are set explicitly, never left to
//! the umask, and a directory found too open is fixed with a warning.

use std::io;
use std::path::{Path, PathBuf};

/// Mode of hooktunnel's directories.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// Mode of hooktunnel's files.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Creates `dir` (and missing parents) and makes `dir` itself owner-only;
/// an existing directory open to others is tightened, with a warning.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => fix_dir_mode(dir, &meta),
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "exists and is not a directory",
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt as _;
                builder.mode(DIR_MODE);
            }
            match builder.create(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            // The umask may have taken bits away but never adds any; set the
            // mode anyway so a racing creator's looser mode does not stick.
            set_mode_dir(dir)
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn fix_dir_mode(dir: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(
            "{} was readable by other users (mode {mode:o}); changed it to {DIR_MODE:o}",
            dir.display()
        );
        set_mode_dir(dir)?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn fix_dir_mode(_dir: &Path, _meta: &std::fs::Metadata) -> io::Result<()> {
    Ok(())
}

fn set_mode_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Creates `file` empty and owner-only when it does not exist yet (so the
/// program that fills it, SQLite, inherits a private file); leaves an
/// existing one alone.
pub fn touch(file: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(FILE_MODE);
    }
    match options.open(file) {
        Ok(_) => restrict_file(file),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes an existing `file` owner-only; a missing one is fine.
pub fn restrict_file(file: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        match std::fs::metadata(file) {
            Ok(meta) if meta.permissions().mode() & 0o777 != FILE_MODE => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(FILE_MODE))
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// A SQLite database and its WAL and shared-memory files.
pub fn sqlite_files(db: &Path) -> [PathBuf; 3] {
    let with = |suffix: &str| {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.to_path_buf(), with("-wal"), with("-shm")]
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn directories_become_private_and_open_ones_are_fixed() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        ensure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(ensure_dir(&file).is_err());
    }

    #[test]
    fn files_are_created_private_and_open_ones_are_fixed() {
        let root = tempfile::tempdir().unwrap();
        let [db, wal, shm] = sqlite_files(&root.path().join("h.sqlite3"));
        assert!(wal.to_string_lossy().ends_with("h.sqlite3-wal"));
        touch(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        std::fs::write(&shm, "x").unwrap();
        std::fs::set_permissions(&shm, std::fs::Permissions::from_mode(0o644)).unwrap();
        touch(&shm).unwrap();
        restrict_file(&shm).unwrap();
        assert_eq!(mode(&shm), 0o600);
        restrict_file(&wal).unwrap();
        assert!(!wal.exists());
    }
}
