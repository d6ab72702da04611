//! Quoting of identifiers and literals for the few DDL statements that cannot take bind parameters.

use anyhow::{Result, bail};

/// `name` as a double-quoted SQL identifier (`"` doubled). Rejects what PostgreSQL would reject or
/// silently truncate, so the caller's name is exactly the name created.
pub fn quote_ident(name: &str) -> Result<String> {
    if name.is_empty() {
        bail!("identifier must not be empty");
    }
    if name.contains('\0') {
        bail!("identifier must not contain NUL");
    }
    // NAMEDATALEN is 64 including the terminator; longer names are truncated with only a NOTICE.
    if name.len() > 63 {
        bail!("identifier {name:?} is longer than 63 bytes");
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

/// `value` as a single-quoted SQL string literal (`'` doubled). Only valid with
/// `standard_conforming_strings = on`, which connections that use it set explicitly.
pub fn quote_literal(value: &str) -> Result<String> {
    if value.contains('\0') {
        bail!("string literal must not contain NUL");
    }
    Ok(format!("'{}'", value.replace('\'', "''")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_ident_doubles_embedded_quotes() {
        assert_eq!(quote_ident(r#"a"b"#).expect("valid"), r#""a""b""#);
        assert_eq!(
            quote_ident("Robert'); DROP TABLE x;--").expect("valid"),
            "\"Robert'); DROP TABLE x;--\""
        );
    }

    #[test]
    fn quote_ident_rejects_empty_nul_and_long_names() {
        assert!(quote_ident("").is_err());
        assert!(quote_ident("a\0b").is_err());
        assert!(quote_ident(&"x".repeat(64)).is_err());
    }

    #[test]
    fn quote_literal_doubles_single_quotes_and_keeps_backslashes() {
        assert_eq!(quote_literal(r"it's\n").expect("valid"), r"'it''s\n'");
        assert!(quote_literal("a\0").is_err());
    }
}
