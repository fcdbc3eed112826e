//! Raw command text hygiene: what is refused before any word is looked at, and how user input
//! is quoted back in error messages without echoing it wholesale.

/// Longest command text accepted. The longest legitimate command is `code` with a pasted
/// redirect URL (a few hundred bytes); anything far beyond is a paste accident or an attack.
pub const MAX_COMMAND_LEN: usize = 4096;

/// Refuses text that no command can contain: too long, control characters, invisible
/// formatting characters (zero-width, bidirectional overrides, tag characters).
pub fn check(text: &str) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > MAX_COMMAND_LEN {
        return Err(format!(
            "the command is too long ({chars} characters, at most {MAX_COMMAND_LEN})"
        ));
    }
    for (position, c) in text.chars().enumerate() {
        if c == ' ' || c == '\t' {
            continue;
        }
        if c.is_control() {
            return Err(format!(
                "the command contains a control character ({}) at position {}",
                describe_char(c),
                position + 1
            ));
        }
        if is_invisible(c) {
            return Err(format!(
                "the command contains an invisible character ({}) at position {}; retype it \
                 instead of pasting",
                describe_char(c),
                position + 1
            ));
        }
    }
    Ok(())
}

/// Unicode format characters (category Cf) and other invisibles that change how text reads
/// without being visible: zero-width joiners, bidi controls, BOM, tag characters.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E0FFF}')
}

/// `'x'` → "`x`"; invisible or non-ASCII characters also get their code point so the operator
/// can see what was actually typed.
pub fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("`{c}`")
    } else if c.is_control() || is_invisible(c) || c == ' ' {
        format!("U+{:04X}", c as u32)
    } else {
        format!("`{c}` (U+{:04X})", c as u32)
    }
}

/// At most 32 characters of user input for an error message, with control characters
/// replaced, so a 10 000-character paste is not echoed back.
pub fn excerpt(input: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = input
        .chars()
        .take(MAX)
        .map(|c| {
            if c.is_control() || is_invisible(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if input.chars().count() > MAX {
        out.push('…');
    }
    out
}

/// Slack may send links as `<https://x|label>` or `<https://x>`; the address is what counts.
pub fn unwrap_slack_link(input: &str) -> &str {
    match input.strip_prefix('<').and_then(|s| s.strip_suffix('>')) {
        Some(inner) => inner.split('|').next().unwrap_or(inner),
        None => input,
    }
}

/// Levenshtein distance, for "did you mean" suggestions over short command names.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("add", "add"), 0);
        assert_eq!(edit_distance("ad", "add"), 1);
        assert_eq!(edit_distance("remvoe", "remove"), 2);
        assert_eq!(edit_distance("", "list"), 4);
    }

    #[test]
    fn excerpt_is_short_and_printable() {
        assert_eq!(excerpt("abc"), "abc");
        let long = excerpt(&"z".repeat(10_000));
        assert_eq!(long.chars().count(), 33);
        assert_eq!(excerpt("a\u{0}b"), "a\u{FFFD}b");
    }

    #[test]
    fn check_refuses_controls_and_invisibles() {
        assert!(check("add foo").is_ok());
        assert!(check("add\tfoo").is_ok());
        assert!(
            check("add fóo").is_ok(),
            "visible non-ASCII is refused later, per argument"
        );
        assert!(check("add \u{0}foo").unwrap_err().contains("U+0000"));
        assert!(check("add foo\r\nremove bar")
            .unwrap_err()
            .contains("U+000D"));
        assert!(check("add \u{1b}[31mfoo").unwrap_err().contains("U+001B"));
        assert!(check("add f\u{200d}oo").unwrap_err().contains("U+200D"));
        assert!(check("add \u{2067}foo").unwrap_err().contains("U+2067"));
        assert!(check(&"a".repeat(MAX_COMMAND_LEN + 1))
            .unwrap_err()
            .contains("too long"));
    }
}
