//! Diagnostics (`tracing`) go to stderr, except while the inspector owns the
//! terminal: then they go to a log file, so a warning cannot scribble over
//! the full-screen UI.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

/// Where log lines go instead of stderr, while set.
static DIVERTED: Mutex<Option<File>> = Mutex::new(None);

/// Installs the global subscriber: level `level` (from -v/-q), else
/// `HOOKTUNNEL_LOG`, else `warn`; colour only when stderr is a terminal and
/// `NO_COLOR` is unset.
pub fn init(level: Option<&str>) {
    let ansi = io::IsTerminal::is_terminal(&io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::new(level),
        None => tracing_subscriber::EnvFilter::try_from_env("HOOKTUNNEL_LOG")
            .unwrap_or_else(|_| "warn".into()),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| Sink)
        .init();
}

/// Sends log lines to `path` (appending) until the returned guard drops.
pub fn divert_to(path: &Path) -> io::Result<Diverted> {
    if let Some(dir) = path.parent() {
        crate::private::ensure_dir(dir)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options.open(path)?;
    crate::private::restrict_file(path)?;
    if let Ok(mut slot) = DIVERTED.lock() {
        *slot = Some(file);
    }
    Ok(Diverted(()))
}

/// Restores logging to stderr on drop.
#[must_use = "logging returns to stderr when this drops"]
pub struct Diverted(());

impl Drop for Diverted {
    fn drop(&mut self) {
        if let Ok(mut slot) = DIVERTED.lock() {
            *slot = None;
        }
    }
}

/// The writer each log event gets: the diverted file, else stderr.
struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Ok(mut slot) = DIVERTED.lock()
            && let Some(file) = slot.as_mut()
        {
            return file.write(buf);
        }
        io::stderr().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Ok(mut slot) = DIVERTED.lock()
            && let Some(file) = slot.as_mut()
        {
            return file.flush();
        }
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    #[test]
    fn diverted_lines_land_in_the_file_until_the_guard_drops() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("logs/hooktunnel.log");
        let guard = divert_to(&path).expect("divert");
        Sink.write_all(b"first\n").expect("write");
        drop(guard);
        Sink.write_all(b"to stderr\n").expect("write");
        let logged = std::fs::read_to_string(&path).expect("read log");
        assert_eq!(logged, "first\n");
    }
}
