//! Splits a command line into words the way the Axigen CLI reads them:
//! words separated by whitespace, "double" or 'single' quoted values, and
//! backslash escapes outside single quotes.

/// Splits `line` into words.
///
/// # Errors
///
/// Returns a message when a quote is not closed.
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();

    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => {
                            if let Some(escaped) = chars.next() {
                                current.push(escaped);
                            }
                        }
                        Some(other) => current.push(other),
                        None => return Err("unterminated double quote".to_string()),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(other) => current.push(other),
                        None => return Err("unterminated single quote".to_string()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(escaped) = chars.next() {
                    current.push(escaped);
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

/// Matches `text` against a shell-style wildcard (`*` and `?`), ignoring
/// case.
pub(crate) fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    let (mut p, mut t) = (0, 0);
    // Position after the last `*` seen and the text position it matched up to.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            backtrack = Some((p + 1, t));
            p += 1;
        } else if let Some((star_next, star_text)) = backtrack {
            p = star_next;
            t = star_text + 1;
            backtrack = Some((star_next, star_text + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_handles_both_quote_kinds() {
        let words = split_words(r#"UPDATE Domain name "a b" 'c\d' e\ f"#).unwrap();
        assert_eq!(words, ["UPDATE", "Domain", "name", "a b", r"c\d", "e f"]);
    }

    #[test]
    fn split_unescapes_inside_double_quotes() {
        let words = split_words(r#"x "say \"hi\"""#).unwrap();
        assert_eq!(words, ["x", r#"say "hi""#]);
    }

    #[test]
    fn split_rejects_unterminated_quote() {
        assert!(split_words("UPDATE Domain \"open").is_err());
    }

    #[test]
    fn wildcard_matches_ignoring_case() {
        assert!(wildcard_matches("*.COM", "name-server.com"));
        assert!(wildcard_matches("l?st*", "List.example"));
        assert!(!wildcard_matches("*.net", "name-server.com"));
        assert!(wildcard_matches("*", ""));
    }
}
