//! The `/` prompt: a one-line editor (cursor keys, Home/End, Ctrl-A/E/U,
//! Backspace/Delete, paste). Pure: a key in, an [`Edit`] out.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// The `/` prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// What was typed.
    pub input: String,
    /// Cursor, a byte index on a char boundary.
    pub cursor: usize,
    /// Why the last Enter was refused.
    pub error: Option<String>,
}

/// What a key did to the prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edit {
    /// The input or the cursor changed (or the key was taken with no change).
    Changed,
    /// Enter: apply the input.
    Submit,
    /// Esc: close the prompt.
    Cancel,
    /// A key the prompt does not use.
    Ignored,
}

impl Prompt {
    /// A prompt holding `input`, the cursor at its end.
    pub fn with(input: String) -> Self {
        Self {
            cursor: input.len(),
            input,
            error: None,
        }
    }

    /// Applies a key; any edit clears the last error.
    pub fn key(&mut self, key: &KeyEvent) -> Edit {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let (s, i) = (&self.input, self.cursor);
        let before = s[..i].chars().next_back().map_or(i, |c| i - c.len_utf8());
        let after = s[i..].chars().next().map_or(i, |c| i + c.len_utf8());
        match key.code {
            KeyCode::Esc => return Edit::Cancel,
            KeyCode::Enter => return Edit::Submit,
            KeyCode::Backspace if i > 0 => {
                self.input.replace_range(before..i, "");
                self.cursor = before;
            }
            KeyCode::Delete if i < s.len() => self.input.replace_range(i..after, ""),
            KeyCode::Left => self.cursor = before,
            KeyCode::Right => self.cursor = after,
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = s.len(),
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = s.len(),
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                self.cursor = 0;
            }
            KeyCode::Char(c) if !ctrl && !c.is_control() => {
                self.input.insert(i, c);
                self.cursor += c.len_utf8();
            }
            _ => return Edit::Ignored,
        }
        self.error = None;
        Edit::Changed
    }

    /// Inserts pasted text at the cursor, control characters as spaces.
    pub fn paste(&mut self, text: &str) {
        let clean: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        self.input.insert_str(self.cursor, &clean);
        self.cursor += clean.len();
        self.error = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::KeyModifiers;

    fn press(p: &mut Prompt, code: KeyCode, modifiers: KeyModifiers) -> Edit {
        p.key(&KeyEvent::new(code, modifiers))
    }

    #[test]
    fn edits_by_characters_not_bytes() {
        let mut p = Prompt::with("méthod".into());
        for code in [KeyCode::Left, KeyCode::Left, KeyCode::Backspace] {
            assert_eq!(press(&mut p, code, KeyModifiers::NONE), Edit::Changed);
        }
        assert_eq!(p.input, "métod");
        press(&mut p, KeyCode::Home, KeyModifiers::NONE);
        press(&mut p, KeyCode::Right, KeyModifiers::NONE);
        press(&mut p, KeyCode::Delete, KeyModifiers::NONE);
        assert_eq!((p.input.as_str(), p.cursor), ("mtod", 1));
        press(&mut p, KeyCode::Char('e'), KeyModifiers::CONTROL);
        assert_eq!(p.cursor, 4);
        p.error = Some("bad".into());
        p.paste("a\tb");
        assert_eq!((p.input.as_str(), p.error.as_deref()), ("mtoda b", None));
        press(&mut p, KeyCode::Char('u'), KeyModifiers::CONTROL);
        assert_eq!((p.input.as_str(), p.cursor), ("", 0));
        assert_eq!(
            press(&mut p, KeyCode::Backspace, KeyModifiers::NONE),
            Edit::Ignored
        );
        assert_eq!(
            press(&mut p, KeyCode::Enter, KeyModifiers::NONE),
            Edit::Submit
        );
        assert_eq!(
            press(&mut p, KeyCode::Esc, KeyModifiers::NONE),
            Edit::Cancel
        );
    }
}
