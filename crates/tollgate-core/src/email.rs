//! E-mail addresses: the one normal form, and the look-alikes refused.
//!
//! [`normalize`] turns what a person typed into the form stored, compared
//! for uniqueness, looked up at login and carried in the `email` claim:
//! trimmed, NFKC-normalised and lower-cased (repeated until stable, so the
//! result is a fixed point). Fullwidth `ａｄｍｉｎ@example.com` therefore *is*
//! `admin@example.com`.
//!
//! It refuses, rather than repairs, addresses that would look like another
//! one or hide characters:
//!
//! - control, format (`Cf`, e.g. U+200B, U+FEFF, U+00AD, U+202E), default-
//!   ignorable, private-use, unassigned, surrogate and whitespace characters;
//! - anything but exactly one `@`, with a non-empty local part;
//! - a domain that is not host-shaped: dot-separated labels of letters,
//!   digits and hyphens, no empty label (so no trailing dot), no label
//!   starting or ending with a hyphen, at most 63 bytes a label;
//! - a local part or a domain label that mixes Latin letters with Cyrillic,
//!   Greek or Armenian ones (`аdmin` with a Cyrillic `а`). A label entirely
//!   in one script (`иван@пример.рф`) is fine.
//!
//! Pure: no I/O. The only error is [`Error::InvalidEmail`], whose sentence
//! names the rule broken, never the address.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::Error;

/// Longest address accepted, in bytes, after normalisation (RFC 5321 path).
pub const MAX_BYTES: usize = 254;
/// Longest input looked at, in bytes (a bound on normalisation work).
const MAX_INPUT_BYTES: usize = 1024;
/// Longest domain label, in bytes (RFC 1035).
const MAX_LABEL_BYTES: usize = 63;
/// Rounds of NFKC + lower-casing before giving up on a fixed point.
const MAX_ROUNDS: usize = 4;

/// The normal form of `raw`, or why it is refused.
pub fn normalize(raw: &str) -> Result<String, Error> {
    let trimmed = raw.trim();
    if trimmed.len() > MAX_INPUT_BYTES {
        return Err(Error::InvalidEmail("the address is too long"));
    }
    // Judge the characters as typed too: NFKC maps some format characters
    // away (or to spaces), and those are refused, not silently dropped.
    check_characters(trimmed)?;
    let mut email = trimmed.to_owned();
    let mut stable = false;
    for _ in 0..MAX_ROUNDS {
        let next: String = email.nfkc().collect::<String>().to_lowercase();
        if next == email {
            stable = true;
            break;
        }
        email = next;
    }
    if !stable {
        return Err(Error::InvalidEmail("the address has no stable normal form"));
    }
    check_characters(&email)?;
    if email.len() > MAX_BYTES {
        return Err(Error::InvalidEmail("the address is longer than 254 bytes"));
    }
    let mut parts = email.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Error::InvalidEmail(
            "the address must contain exactly one `@`",
        ));
    };
    if local.is_empty() {
        return Err(Error::InvalidEmail("the part before `@` is empty"));
    }
    if mixes_scripts(local) {
        return Err(Error::InvalidEmail(
            "the part before `@` mixes Latin with Cyrillic, Greek or Armenian letters",
        ));
    }
    check_domain(domain)?;
    Ok(email)
}

fn check_characters(text: &str) -> Result<(), Error> {
    for c in text.chars() {
        if c.is_whitespace() || is_hidden(c) {
            return Err(Error::InvalidEmail(
                "the address contains an invisible, control or formatting character",
            ));
        }
    }
    Ok(())
}

/// Characters that render as nothing, reorder text, or mean nothing yet.
fn is_hidden(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::Surrogate
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::SpaceSeparator
    ) || is_default_ignorable(c)
}

/// `Default_Ignorable_Code_Point` (Unicode 15, DerivedCoreProperties.txt).
fn is_default_ignorable(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

fn check_domain(domain: &str) -> Result<(), Error> {
    if domain.is_empty() {
        return Err(Error::InvalidEmail("the domain is empty"));
    }
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(Error::InvalidEmail(
                "the domain has an empty label (a leading, trailing or doubled dot)",
            ));
        }
        if label.len() > MAX_LABEL_BYTES {
            return Err(Error::InvalidEmail(
                "a domain label is longer than 63 bytes",
            ));
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return Err(Error::InvalidEmail(
                "a domain label holds something other than letters, digits and hyphens",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(Error::InvalidEmail(
                "a domain label starts or ends with a hyphen",
            ));
        }
        if mixes_scripts(label) {
            return Err(Error::InvalidEmail(
                "a domain label mixes Latin with Cyrillic, Greek or Armenian letters",
            ));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Script {
    Latin,
    Confusable,
    Other,
}

/// Latin, or one of the scripts whose letters pass for Latin ones.
fn script(c: char) -> Script {
    match u32::from(c) {
        0x0041..=0x005A
        | 0x0061..=0x007A
        | 0x00AA
        | 0x00BA
        | 0x00C0..=0x00D6
        | 0x00D8..=0x00F6
        | 0x00F8..=0x02AF
        | 0x1D00..=0x1D7F
        | 0x1E00..=0x1EFF
        | 0x2C60..=0x2C7F
        | 0xA720..=0xA7FF
        | 0xAB30..=0xAB6F
        | 0xFB00..=0xFB06 => Script::Latin,
        // Greek and Coptic, Cyrillic (+ supplement, extended A–C),
        // Armenian, Greek extended, the Armenian ligatures.
        0x0370..=0x03FF
        | 0x0400..=0x052F
        | 0x0531..=0x058F
        | 0x1C80..=0x1C8F
        | 0x1F00..=0x1FFF
        | 0x2DE0..=0x2DFF
        | 0xA640..=0xA69F
        | 0xFB13..=0xFB17 => Script::Confusable,
        _ => Script::Other,
    }
}

/// Whether `text` holds Latin letters together with Cyrillic, Greek or
/// Armenian ones (or letters of two of those).
fn mixes_scripts(text: &str) -> bool {
    let mut latin = false;
    let mut confusable: Option<u32> = None;
    for c in text.chars().filter(|c| c.is_alphabetic()) {
        match script(c) {
            Script::Latin => latin = true,
            Script::Confusable => {
                let block = match u32::from(c) {
                    0x0370..=0x03FF | 0x1F00..=0x1FFF => 0, // Greek
                    0x0531..=0x058F | 0xFB13..=0xFB17 => 1, // Armenian
                    _ => 2,                                 // Cyrillic
                };
                if confusable.is_some_and(|seen| seen != block) {
                    return true;
                }
                confusable = Some(block);
            }
            Script::Other => {}
        }
        if latin && confusable.is_some() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_addresses_and_their_normal_form() {
        for (raw, normal) in [
            ("admin@example.com", "admin@example.com"),
            ("  Ann@Example.COM ", "ann@example.com"),
            ("ADMIN@Example.com", "admin@example.com"),
            // Fullwidth: NFKC makes it the ASCII address (and so a collision).
            ("ａｄｍｉｎ@example.com", "admin@example.com"),
            ("ａｄｍｉｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "admin@example.com"),
            (
                "first.last+tag@sub.example-mail.co.uk",
                "first.last+tag@sub.example-mail.co.uk",
            ),
            // Whole-script Cyrillic and Greek stay allowed.
            ("иван@пример.рф", "иван@пример.рф"),
            ("Иван@Пример.РФ", "иван@пример.рф"),
            ("αλφα@example.gr", "αλφα@example.gr"),
            ("josé@example.com", "josé@example.com"),
            // A Cyrillic local part with a Latin domain: each part is one script.
            ("иван@example.com", "иван@example.com"),
            ("user1@123.example", "user1@123.example"),
            ("a@b", "a@b"),
        ] {
            assert_eq!(normalize(raw).as_deref(), Ok(normal), "{raw:?}");
        }
    }

    #[test]
    fn refused_addresses() {
        for raw in [
            "",
            "admin",
            "@example.com",
            "admin@",
            "a b@example.com",
            "a\u{0}@example.com",
            "ad\u{200b}min@example.com",  // zero-width space
            "admin\u{feff}@example.com",  // zero-width no-break space (BOM)
            "ad\u{ad}min@example.com",    // soft hyphen
            "\u{202e}moc.elpmaxe@nimda",  // right-to-left override
            "admin@exam\u{202e}ple.com",  // right-to-left override in the domain
            "ad\u{200d}min@example.com",  // zero-width joiner
            "ad\u{2060}min@example.com",  // word joiner
            "admin\u{034f}@example.com",  // combining grapheme joiner
            "admin\u{fe0f}@example.com",  // variation selector
            "admin\u{e0041}@example.com", // tag character
            "admin\u{3000}@example.com",  // ideographic space
            "\u{430}dmin@example.com",    // Cyrillic а + Latin
            "admin@ex\u{430}mple.com",    // Cyrillic а in a Latin label
            "p\u{3bf}st@example.com",     // Greek ο + Latin
            "\u{570}ello@example.com",    // Armenian հ + Latin
            "admin@example.com.",
            "admin@.example.com",
            "admin@example..com",
            "a@b@c",
            "admin@-example.com",
            "admin@example-.com",
            "admin@exa_mple.com",
            "admin@example.com/x",
            "admin@[127.0.0.1]",
            "admin@exa mple.com",
            "admin\u{e000}@example.com", // private use
            &format!("{}@example.com", "a".repeat(250)),
            &format!("a@{}.com", "b".repeat(64)),
            &"a".repeat(5000),
        ] {
            let refused = normalize(raw);
            assert!(
                matches!(refused, Err(Error::InvalidEmail(_))),
                "{raw:?}: {refused:?}"
            );
        }
    }

    #[test]
    fn the_error_names_the_rule_not_the_address() {
        let error = normalize("ad\u{200b}min@example.com").unwrap_err();
        assert_eq!(error.code(), "invalid_email");
        assert!(!error.to_string().contains("admin"), "{error}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn normalisation_is_idempotent_and_never_panics(raw in "\\PC{0,40}|.{0,40}") {
            if let Ok(normal) = normalize(&raw) {
                prop_assert_eq!(normalize(&normal), Ok(normal.clone()));
            }
        }

        #[test]
        fn address_like_input_is_idempotent(
            local in "[a-zA-Z0-9\u{ff21}-\u{ff3a}\u{0400}-\u{04ff}\u{1d2c}-\u{1d6a}._+-]{1,12}",
            domain in "[a-zA-Z0-9\u{ff41}-\u{ff5a}\u{0370}-\u{03ff}-]{1,12}(\\.[a-z\u{ff0e}]{1,5}){0,2}",
        ) {
            let raw = format!("{local}@{domain}");
            if let Ok(normal) = normalize(&raw) {
                prop_assert_eq!(normalize(&normal), Ok(normal.clone()));
            }
        }
    }
}
