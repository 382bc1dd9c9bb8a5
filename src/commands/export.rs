//! `hooktunnel export`: one exchange as a curl command, HAR 1.2 or JSON.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::{ExportArgs, ExportFormat};
use crate::config::Paths;
use crate::forward::Target;
use crate::store::Store;

/// Runs `export`.
pub fn run(args: &ExportArgs, paths: &Paths) -> anyhow::Result<()> {
    let store = Store::open(&paths.db()).context("cannot open the history")?;
    let exchange = store.resolve(&args.id)?;
    if args.to.is_some() && args.format != ExportFormat::Curl {
        anyhow::bail!("--to only applies to --format curl");
    }
    let text = match args.format {
        ExportFormat::Json => {
            let mut s = crate::json::to_string_pretty(&crate::export::json(&exchange))?;
            s.push('\n');
            s
        }
        ExportFormat::Har => {
            let mut s = crate::json::to_string_pretty(&crate::export::har(std::slice::from_ref(
                &exchange,
            )))?;
            s.push('\n');
            s
        }
        ExportFormat::Curl => {
            if let Some(t) = &exchange.request_truncated {
                anyhow::bail!(
                    "cannot export {} as curl: its request body was captured only in part ({}), so the command would send something else; --format json or har show what was kept (raise --capture-max on `listen` to capture bodies whole)",
                    exchange.id,
                    crate::capture::note(t, exchange.capture_degraded)
                );
            }
            let base = match &args.to {
                Some(to) => Target::parse(to)?.base_url(),
                None => exchange.target.clone(),
            };
            let body_file = body_file_path(args.output.as_deref(), &exchange.id.to_string())?;
            let export = crate::export::curl(&exchange, &base, Some(&body_file));
            if export.needs_body_file {
                std::fs::write(&body_file, &exchange.request_body).with_context(|| {
                    format!("cannot write the request body to {}", body_file.display())
                })?;
                eprintln!(
                    "hooktunnel: the body ({} bytes, binary) is in {}; the command reads it from there",
                    exchange.request_body.len(),
                    body_file.display()
                );
            }
            export.script
        }
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("hooktunnel: wrote {}", path.display());
        }
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(())
}

/// Where a body that cannot go inline is written: next to `output`, or in
/// the current directory, as `hooktunnel-<id>.body`; absolute, so the
/// command works from any directory.
fn body_file_path(output: Option<&Path>, id: &str) -> anyhow::Result<PathBuf> {
    let dir = match output.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = std::path::absolute(&dir)
        .with_context(|| format!("cannot resolve the directory {}", dir.display()))?;
    Ok(dir.join(format!("hooktunnel-{id}.body")))
}
