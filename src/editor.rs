//! Editing a captured request in the user's editor before replaying it; one
//! behaviour for `replay --edit` and the inspector's `e`.
//!
//! - The editor is found as git finds it: `$VISUAL`, else `$EDITOR`, else
//!   `vi`. The value is split with shell rules, so `EDITOR="code --wait"`
//!   and quoted paths with spaces work.
//! - The request is written as an HTTP/1.1 message
//!   ([`crate::export::http_message`]) into a private directory; a binary
//!   body goes to a file of its own, named in the message.
//! - Saving it unchanged sends it as captured ([`EditOutcome::Unchanged`]);
//!   deleting everything (comments may stay) cancels
//!   ([`EditOutcome::Cancelled`]); an editor that exits with an error (`:cq`
//!   in vim) cancels with an error. A message that cannot be read back is an
//!   error and its files are kept for the user to fix; the error names them.
//!
//! Everything here blocks (the editor owns the terminal until it exits):
//! call it from `spawn_blocking` on a runtime.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::config::write_private;
use crate::exchange::Exchange;
use crate::export::http_message::{self, MessageError};
use crate::replay::ReplayRequest;

/// What the user did with the request in the editor.
#[derive(Clone, Debug)]
pub enum EditOutcome {
    /// Saved as it was: send the original.
    Unchanged,
    /// Changed: send this instead (Content-Length already follows the body).
    Edited(ReplayRequest),
    /// Emptied: send nothing.
    Cancelled,
}

/// Why no editor command could be worked out.
#[derive(Debug, thiserror::Error)]
pub enum EditorError {
    /// `$VISUAL` or `$EDITOR` does not split into words (e.g. an open quote).
    #[error("cannot read ${var} ({value:?}): {reason}; quote it as you would in a shell")]
    BadCommand {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What the shell-word splitter said.
        reason: String,
    },
}

/// First line of the message: how to send and how to cancel.
const GUIDE: &str = "# hooktunnel: edit this request, then save and quit to send it.\n# Delete everything to cancel; Content-Length is fixed for you.\n";

/// An editor command line, without the file to edit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Editor {
    words: Vec<String>,
}

impl Editor {
    /// The user's editor from the environment (`$VISUAL`, `$EDITOR`, `vi`).
    pub fn from_env() -> Result<Self, EditorError> {
        let visual = std::env::var("VISUAL").ok();
        let editor = std::env::var("EDITOR").ok();
        Self::from_vars(visual.as_deref(), editor.as_deref())
    }

    /// The editor given these values of `$VISUAL` and `$EDITOR`: the first
    /// that is set and not blank, split with shell rules; else `vi`.
    pub fn from_vars(visual: Option<&str>, editor: Option<&str>) -> Result<Self, EditorError> {
        for (var, value) in [("VISUAL", visual), ("EDITOR", editor)] {
            let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let words = shell_words::split(value).map_err(|e| EditorError::BadCommand {
                var,
                value: value.to_owned(),
                reason: e.to_string(),
            })?;
            if !words.is_empty() {
                return Ok(Self { words });
            }
        }
        Ok(Self {
            words: vec!["vi".to_owned()],
        })
    }

    /// The program and its arguments.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// The command as the user would type it.
    fn shown(&self) -> String {
        shell_words::join(&self.words)
    }

    /// Opens `file` and waits for the editor to exit; a failed exit is an error.
    pub fn open(&self, file: &Path) -> anyhow::Result<()> {
        let (program, args) = self
            .words
            .split_first()
            .context("no editor configured; set VISUAL or EDITOR")?;
        let status = Command::new(program)
            .args(args)
            .arg(file)
            .status()
            .with_context(|| {
                format!(
                    "cannot start the editor `{}`; set VISUAL or EDITOR (e.g. EDITOR=nano or EDITOR=\"code --wait\")",
                    self.shown()
                )
            })?;
        if !status.success() {
            anyhow::bail!(
                "the editor `{}` exited with {status}; nothing sent",
                self.shown()
            );
        }
        Ok(())
    }

    /// Writes `original`'s request into a new private directory under
    /// `scratch_dir`, lets the user edit it and reads back what to send. The
    /// directory is removed afterwards unless the edit cannot be read back,
    /// in which case the error says where it is.
    pub fn edit_request(
        &self,
        original: &Exchange,
        scratch_dir: &Path,
    ) -> anyhow::Result<EditOutcome> {
        let mut dir = ScratchDir::create(scratch_dir)?;
        let message_path = dir.path.join(format!("hooktunnel-{}.http", original.id));
        let body_path = dir.path.join(format!("hooktunnel-{}.body", original.id));
        let (text, binary) = http_message::render(original, Some(&body_path));
        let text = format!("{GUIDE}{text}");
        // Private from creation: headers may hold secrets.
        write_private(&message_path, text.as_bytes())
            .with_context(|| format!("cannot write {}", message_path.display()))?;
        if let Some(bytes) = &binary {
            write_private(&body_path, bytes)
                .with_context(|| format!("cannot write {}", body_path.display()))?;
        }
        self.open(&message_path)?;
        let edited = std::fs::read(&message_path)
            .with_context(|| format!("cannot read back {}", message_path.display()))?;
        let body_untouched = match &binary {
            Some(bytes) => std::fs::read(&body_path).is_ok_and(|now| &now == bytes),
            None => true,
        };
        if edited == text.as_bytes() && body_untouched {
            return Ok(EditOutcome::Unchanged);
        }
        let mut parsed = match http_message::parse(&edited) {
            Ok(p) => p,
            Err(MessageError::Empty) => return Ok(EditOutcome::Cancelled),
            Err(e) => {
                dir.keep = true;
                anyhow::bail!(
                    "cannot read the edited request: {e}; nothing sent. Your edit is kept in {}",
                    message_path.display()
                );
            }
        };
        if let Some(file) = parsed.body_file.take() {
            let body = std::fs::read(&file).with_context(|| {
                dir.keep = true;
                format!(
                    "cannot read the body file {} named in the edited request; nothing sent (your edit is kept in {})",
                    file.display(),
                    message_path.display()
                )
            })?;
            parsed.set_body(body.into());
        }
        Ok(EditOutcome::Edited(ReplayRequest {
            method: parsed.method,
            path: parsed.path,
            headers: parsed.headers,
            body: parsed.body,
        }))
    }
}

/// [`Editor::edit_request`] with the user's editor from the environment.
pub fn edit_request(original: &Exchange, scratch_dir: &Path) -> anyhow::Result<EditOutcome> {
    Editor::from_env()?.edit_request(original, scratch_dir)
}

/// A private directory for one edit, removed on drop unless kept.
struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    fn create(parent: &Path) -> anyhow::Result<Self> {
        let path = parent.join(format!(
            "hooktunnel-edit-{}",
            hooktunnel_protocol::next_id()
        ));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt as _;
            builder.mode(0o700);
        }
        builder
            .create(&path)
            .with_context(|| format!("cannot create {} for editing", path.display()))?;
        Ok(Self { path, keep: false })
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn words(e: &Editor) -> Vec<&str> {
        e.words().iter().map(String::as_str).collect()
    }

    #[test]
    fn visual_then_editor_then_vi() {
        let both = Editor::from_vars(Some("nano"), Some("emacs")).unwrap();
        assert_eq!(words(&both), ["nano"]);
        let blank_visual = Editor::from_vars(Some("  "), Some("emacs")).unwrap();
        assert_eq!(words(&blank_visual), ["emacs"]);
        assert_eq!(words(&Editor::from_vars(None, None).unwrap()), ["vi"]);
        assert_eq!(
            words(&Editor::from_vars(Some(""), Some("")).unwrap()),
            ["vi"]
        );
    }

    #[test]
    fn the_command_is_split_with_shell_rules() {
        let code = Editor::from_vars(None, Some("code --wait")).unwrap();
        assert_eq!(words(&code), ["code", "--wait"]);
        let quoted =
            Editor::from_vars(Some("'/opt/My Editor/bin/ed' -n \"two words\""), None).unwrap();
        assert_eq!(words(&quoted), ["/opt/My Editor/bin/ed", "-n", "two words"]);
        let err = Editor::from_vars(Some("vim 'unclosed"), None).unwrap_err();
        assert!(err.to_string().contains("$VISUAL"), "{err}");
    }

    /// An editor: `sh` running a script (in a directory with a space) that
    /// does `action` to the file in `$1`.
    fn script_editor(dir: &Path, action: &str) -> Editor {
        let scripts = dir.join("my scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        let script = scripts.join("edit.sh");
        std::fs::write(&script, action).unwrap();
        let value = format!("sh {}", shell_words::quote(&script.display().to_string()));
        Editor::from_vars(Some(&value), Some("false")).unwrap()
    }

    fn original() -> Exchange {
        crate::export::fixtures::text_exchange()
    }

    fn leftovers(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("hooktunnel-edit-")
            })
            .count()
    }

    #[cfg(unix)]
    #[test]
    fn outcomes_of_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let scratch = dir.path();
        let original = original();

        let untouched = script_editor(scratch, "true\n");
        assert!(matches!(
            untouched.edit_request(&original, scratch).unwrap(),
            EditOutcome::Unchanged
        ));

        let path = script_editor(
            scratch,
            "sed -i 's#^POST /hooks/[^ ]*#POST /edited#' \"$1\"\n",
        );
        match path.edit_request(&original, scratch).unwrap() {
            EditOutcome::Edited(request) => {
                assert_eq!(request.path, "/edited");
                assert_eq!(request.method, original.method);
                assert_eq!(request.body, original.request_body);
            }
            other => panic!("{other:?}"),
        }

        // Emptied (comments may stay): cancelled, nothing to send.
        let empty = script_editor(scratch, "printf '# bye\\n' > \"$1\"\n");
        assert!(matches!(
            empty.edit_request(&original, scratch).unwrap(),
            EditOutcome::Cancelled
        ));
        assert_eq!(leftovers(scratch), 0, "scratch directories are removed");

        // A failing editor cancels with an error.
        let quit = script_editor(scratch, "exit 1\n");
        let err = quit.edit_request(&original, scratch).unwrap_err();
        assert!(format!("{err:#}").contains("nothing sent"), "{err:#}");

        // Garbage: an error naming the kept file.
        let garbage = script_editor(scratch, "printf 'not a request\\n' > \"$1\"\n");
        let err = format!(
            "{:#}",
            garbage.edit_request(&original, scratch).unwrap_err()
        );
        assert!(err.contains("bad request line"), "{err}");
        assert!(err.contains("kept in"), "{err}");
        assert_eq!(leftovers(scratch), 1, "the unreadable edit is kept");
    }
}
