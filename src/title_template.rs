//! The grammar of `[youtube] title_template`: text and `{placeholder}` / `{started:<strftime>}`
//! pieces, and the check config validation runs on it. Pure; the upload metadata fills the
//! pieces from a recording's sidecar.

use chrono::format::{Item, StrftimeItems};

const PLACEHOLDERS: &[&str] = &[
    "display_name",
    "login",
    "title",
    "game",
    "part",
    "stream_id",
    "started",
];

/// Checks a title template: known placeholders, valid strftime formats.
pub fn check_template(template: &str) -> Result<(), String> {
    for piece in pieces(template) {
        if let Piece::Placeholder { name, format } = piece {
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "unknown placeholder `{{{name}}}`; use {}",
                    PLACEHOLDERS
                        .iter()
                        .map(|p| format!("{{{p}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            if let Some(format) = format {
                if name != "started" {
                    return Err(format!("only {{started:…}} takes a format, not {{{name}}}"));
                }
                if StrftimeItems::new(format).any(|i| matches!(i, Item::Error)) {
                    return Err(format!("`{format}` is not a valid strftime format"));
                }
            }
        }
    }
    Ok(())
}

/// A piece of a title template.
#[derive(Debug)]
pub enum Piece<'a> {
    Text(&'a str),
    Placeholder {
        name: &'a str,
        format: Option<&'a str>,
    },
}

/// Splits `a {b} c {started:%H}` into text and placeholders; an unclosed `{` is text.
pub fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        if open > 0 {
            out.push(Piece::Text(&rest[..open]));
        }
        let inner = &rest[open + 1..open + close];
        let (name, format) = match inner.split_once(':') {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        out.push(Piece::Placeholder { name, format });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: &str = "{display_name} {started:%Y-%m-%d %H:%M} {title}";

    #[test]
    fn templates_are_checked() {
        assert!(check_template(DEFAULT).is_ok());
        assert!(check_template("{login} {started}").is_ok());
        assert!(check_template("{nope}")
            .unwrap_err()
            .contains("unknown placeholder"));
        assert!(check_template("{started:%Q}")
            .unwrap_err()
            .contains("strftime"));
        assert!(check_template("{login:%Y}").unwrap_err().contains("format"));
        assert!(check_template("plain { text").is_ok());
    }
}
