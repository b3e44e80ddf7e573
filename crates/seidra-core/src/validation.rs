//! Field-level validation errors, the rules for usernames and passwords, and the display-name
//! sanitiser for uploaded files.

use serde::Serialize;

/// A rejected input value: which field and why, shown to the client as-is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The JSON field (dotted path) that was rejected.
    pub field: String,
    /// Why it was rejected, in plain words.
    pub message: String,
}

impl ValidationError {
    /// Builds an error for `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Minimum password length (characters).
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Maximum password length (bytes) so hashing cost stays bounded.
pub const MAX_PASSWORD_BYTES: usize = 256;

/// Passwords that meet the length rule but are still trivially guessed.
const COMMON_PASSWORDS: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "password1234",
    "password12345",
    "passwordpassword",
    "qwertyuiop12",
    "qwertyuiopas",
    "qwerty123456",
    "administrator",
    "adminadmin12",
    "letmein12345",
    "iloveyou1234",
    "welcome12345",
    "changeme1234",
    "aaaaaaaaaaaa",
    "abcdefghijkl",
    "abc123abc123",
    "motdepasse12",
    "azertyuiop12",
    "seidraseidra",
    "seidra123456",
    "000000000000",
    "111111111111",
    "football1234",
    "baseball1234",
    "trustno1trustno1",
    "monkeymonkey",
    "dragondragon",
    "sunshine1234",
];

/// Checks a new password: length bounds, not common, not mostly the username, not one repeated char.
pub fn validate_password(field: &str, password: &str, username: &str) -> Result<(), ValidationError> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(ValidationError::new(field, format!("must be at least {MIN_PASSWORD_CHARS} characters long")));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ValidationError::new(field, format!("must be at most {MAX_PASSWORD_BYTES} bytes long")));
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err(ValidationError::new(field, "is too common; choose a less guessable password"));
    }
    let mut distinct: Vec<char> = lower.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 4 {
        return Err(ValidationError::new(field, "must use at least 4 different characters"));
    }
    if !username.is_empty() && lower.contains(&username.to_lowercase()) && chars < username.len() + 8 {
        return Err(ValidationError::new(field, "must not be based on the username"));
    }
    Ok(())
}

/// Checks a username: 3–32 characters of `a-z 0-9 . _ -`, starting with a letter or digit.
pub fn validate_username(field: &str, username: &str) -> Result<(), ValidationError> {
    let len = username.chars().count();
    if !(3..=32).contains(&len) {
        return Err(ValidationError::new(field, "must be 3 to 32 characters long"));
    }
    let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-');
    if !username.chars().all(valid_char) {
        return Err(ValidationError::new(field, "may only contain lowercase letters, digits, '.', '_' and '-'"));
    }
    if !username.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err(ValidationError::new(field, "must start with a letter or a digit"));
    }
    Ok(())
}

/// Checks a free-text label (API key name…): non-empty after trimming, bounded length.
pub fn validate_label(field: &str, value: &str, max_chars: usize) -> Result<(), ValidationError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(ValidationError::new(field, format!("must be at most {max_chars} characters")));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(ValidationError::new(field, "must not contain control characters"));
    }
    Ok(())
}

/// Longest kept upload display name, characters.
pub const MAX_FILENAME_CHARS: usize = 200;

/// A display name from a client-supplied file name: the last path component (either slash),
/// no control characters, no leading dots, no `..`, at most [`MAX_FILENAME_CHARS`] characters;
/// `upload` when nothing is left. It is never used to build a storage key.
pub fn sanitize_filename(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect::<String>().replace("..", "");
    // Dots and spaces together: trimming them one after the other left ". .x" as ".x".
    let trimmed = cleaned.trim_start_matches(|c: char| c == '.' || c.is_whitespace()).trim_end();
    let name: String = trimmed.chars().take(MAX_FILENAME_CHARS).collect();
    if name.is_empty() { "upload".to_owned() } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules() {
        assert!(validate_password("password", "short", "bob").is_err());
        assert!(validate_password("password", "password1234", "bob").is_err());
        assert!(validate_password("password", "aaaaaaaaaaaaaaaa", "bob").is_err());
        assert!(validate_password("password", "aliceliceali", "alice").is_err());
        assert!(validate_password("password", "correct horse battery", "bob").is_ok());
        let err = validate_password("new_password", "x", "bob").err();
        assert_eq!(err.map(|e| e.field), Some("new_password".to_owned()));
    }

    #[test]
    fn username_rules() {
        assert!(validate_username("username", "ab").is_err());
        assert!(validate_username("username", "Alice").is_err());
        assert!(validate_username("username", "_alice").is_err());
        assert!(validate_username("username", "alice.b-2_x").is_ok());
    }

    #[test]
    fn names_are_sanitised() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("C:\\Users\\me\\cat.png"), "cat.png");
        assert_eq!(sanitize_filename("..\\..\\x"), "x");
        assert_eq!(sanitize_filename("a\u{0}b\r\n.png"), "ab.png");
        assert_eq!(sanitize_filename(".bashrc"), "bashrc");
        assert_eq!(sanitize_filename("...."), "upload");
        assert_eq!(sanitize_filename(""), "upload");
        assert_eq!(sanitize_filename("dir/"), "upload");
        assert_eq!(sanitize_filename("x..y.png"), "xy.png");
        assert_eq!(sanitize_filename(&"é".repeat(300)).chars().count(), MAX_FILENAME_CHARS);
        // Found by the `multipart` fuzz target: a space between leading dots kept a dot.
        assert_eq!(sanitize_filename(". .bashrc"), "bashrc");
        assert_eq!(sanitize_filename(" . \u{a0}. ..x. "), "x.");
    }
}
