//! The one `Include` line cf-allow keeps in csf.allow and csf.ignore.
//!
//! CSF loads `Include PATH` only when the line starts at column 0 and nothing follows the
//! path (`/^Include\s*(.*)$/`, the rest of the line is the path). Every line that is not
//! cf-allow's own Include line is left byte-identical.

/// Whether a file holds cf-allow's Include line in a form CSF loads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IncludeState {
    /// Exactly one line, exactly `Include <path>`.
    Ok,
    /// No line includes the file.
    Missing,
    /// Lines meant to include the file that CSF would not load, or more than one.
    Broken,
}

/// The canonical line (without line terminator).
pub fn line_for(target: &str) -> String {
    format!("Include {target}")
}

/// Lines with their terminators, so that joining them gives back the exact bytes.
fn split_lines(text: &[u8]) -> Vec<&[u8]> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, b) in text.iter().enumerate() {
        if *b == b'\n' {
            lines.push(&text[start..=i]);
            start = i + 1;
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn content(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// True when `line` is meant to include `target`: an uncommented `Include` naming the
/// path, however it is spaced or followed.
fn refers_to(line: &[u8], target: &str) -> bool {
    let text = String::from_utf8_lossy(content(line));
    let Some(rest) = text.trim_start().strip_prefix("Include") else {
        return false;
    };
    let rest = rest.trim_start();
    match rest.strip_prefix(target) {
        Some(after) => {
            after.is_empty() || after.starts_with(char::is_whitespace) || after.starts_with('#')
        }
        None => false,
    }
}

fn is_canonical(line: &[u8], target: &str) -> bool {
    content(line) == line_for(target).as_bytes()
}

/// How `text` includes `target`.
pub fn state(text: &[u8], target: &str) -> IncludeState {
    let ours: Vec<&[u8]> = split_lines(text)
        .into_iter()
        .filter(|l| refers_to(l, target))
        .collect();
    match ours.as_slice() {
        [] => IncludeState::Missing,
        [one] if is_canonical(one, target) => IncludeState::Ok,
        _ => IncludeState::Broken,
    }
}

/// `text` with exactly one canonical Include line for `target`: a broken line is replaced in
/// place (keeping its line ending), extra ones dropped; a missing line is appended at the
/// end, or before a last line that has no line ending (so that no other byte changes and
/// [`without`] gives back the original exactly).
pub fn with(text: &[u8], target: &str) -> Vec<u8> {
    let lines = split_lines(text);
    let wanted = line_for(target);
    let mut out = Vec::with_capacity(text.len() + wanted.len() + 1);
    let mut placed = false;
    for line in &lines {
        if refers_to(line, target) {
            if !placed {
                out.extend_from_slice(wanted.as_bytes());
                out.extend_from_slice(terminator(line));
                placed = true;
            }
        } else {
            out.extend_from_slice(line);
        }
    }
    if placed {
        return out;
    }
    match lines.last() {
        Some(last) if !last.ends_with(b"\n") => {
            let keep = out.len() - last.len();
            out.truncate(keep);
            out.extend_from_slice(wanted.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(last);
        }
        _ => {
            out.extend_from_slice(wanted.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

fn terminator(line: &[u8]) -> &'static [u8] {
    if line.ends_with(b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// `text` without any line meant to include `target`; every other byte unchanged.
pub fn without(text: &[u8], target: &str) -> Vec<u8> {
    split_lines(text)
        .into_iter()
        .filter(|l| !refers_to(l, target))
        .flatten()
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "/etc/csf/cf-allow.allow";

    #[test]
    fn appends_once_and_removes_exactly() {
        let original = b"# admin\n1.2.3.4 # office\nInclude /etc/csf/mine.allow\n".to_vec();
        assert_eq!(state(&original, T), IncludeState::Missing);
        let added = with(&original, T);
        assert_eq!(
            added,
            b"# admin\n1.2.3.4 # office\nInclude /etc/csf/mine.allow\nInclude /etc/csf/cf-allow.allow\n"
        );
        assert_eq!(state(&added, T), IncludeState::Ok);
        assert_eq!(with(&added, T), added);
        assert_eq!(without(&added, T), original);
    }

    #[test]
    fn no_trailing_newline_keeps_the_last_line_intact() {
        let original = b"1.2.3.4 # office".to_vec();
        let added = with(&original, T);
        assert_eq!(added, b"Include /etc/csf/cf-allow.allow\n1.2.3.4 # office");
        assert_eq!(without(&added, T), original);
        assert_eq!(with(b"", T), b"Include /etc/csf/cf-allow.allow\n");
        assert_eq!(without(&with(b"", T), T), b"");
    }

    #[test]
    fn forms_csf_does_not_load_are_repaired_in_place() {
        for broken in [
            "Include /etc/csf/cf-allow.allow # cf-allow",
            " Include /etc/csf/cf-allow.allow",
            "Include /etc/csf/cf-allow.allow ",
            "Include  /etc/csf/cf-allow.allow",
            "Include/etc/csf/cf-allow.allow",
        ] {
            let text = format!("a\n{broken}\nb\n");
            assert_eq!(
                state(text.as_bytes(), T),
                IncludeState::Broken,
                "{broken:?}"
            );
            let fixed = with(text.as_bytes(), T);
            assert_eq!(
                String::from_utf8_lossy(&fixed),
                "a\nInclude /etc/csf/cf-allow.allow\nb\n",
                "{broken:?}"
            );
        }
        let twice = format!("{}\nx\n{}\n", line_for(T), line_for(T));
        assert_eq!(state(twice.as_bytes(), T), IncludeState::Broken);
        assert_eq!(
            with(twice.as_bytes(), T),
            format!("{}\nx\n", line_for(T)).as_bytes()
        );
    }

    #[test]
    fn comments_and_other_paths_are_not_ours() {
        for other in [
            "# Include /etc/csf/cf-allow.allow",
            "Include /etc/csf/cf-allow.allow.bak",
            "Include /etc/csf/other",
        ] {
            let text = format!("{other}\n");
            assert_eq!(state(text.as_bytes(), T), IncludeState::Missing, "{other}");
            assert_eq!(without(text.as_bytes(), T), text.as_bytes());
        }
    }

    #[test]
    fn crlf_files_keep_their_line_endings() {
        let original = b"1.2.3.4\r\nInclude /etc/csf/cf-allow.allow #x\r\n5.6.7.8\r\n";
        let fixed = with(original, T);
        assert_eq!(
            fixed,
            b"1.2.3.4\r\nInclude /etc/csf/cf-allow.allow\r\n5.6.7.8\r\n"
        );
        assert_eq!(state(&fixed, T), IncludeState::Ok);
    }
}
