//! The content policy: what the instance refuses to generate, and the one function that decides
//! ([`evaluate`]). It is pure: the API loads the admin's document and the user's preferences,
//! then asks this module about the texts of a request or persona.
//!
//! # Matching
//!
//! Texts and terms are folded the same way: Unicode NFKD, combining marks dropped (so `é`
//! matches `e`), lowercase. A term matches **whole words** only (`ass` does not match `class`);
//! a multi-word term matches the same words in sequence (`child porn`) or written as one word
//! (`childporn`); a term ending in `*` matches any word starting with it (`porn*`).
//!
//! Trivial evasions caught (reasonable effort, not an adversarial classifier):
//! * punctuation or symbols inside a word: `n.s.f.w`, `nu-de`, `nu\u{200b}de`;
//! * letters spaced out: `n s f w`, `n  u  d  e` (runs of single letters are joined);
//! * common digit/symbol substitutions inside words: `s3x`, `l0li`, `@` for `a`, `$` for `s`;
//! * full-width or styled Unicode letters (`ｎｕｄｅ`, `𝐧𝐮𝐝𝐞`) and accents.
//!
//! Not caught: a space inside a word (`nu de`), repeated letters (`nuuude`), look-alike letters
//! from other scripts (Cyrillic `а`), misspellings and synonyms — admins add those as terms.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;
use utoipa::ToSchema;

use crate::ValidationError;

/// Name of the built-in category that is always blocked and cannot be removed.
pub const MINORS: &str = "minors";
/// Name of the built-in category of sexual/explicit terms, blocked unless NSFW is allowed.
pub const EXPLICIT: &str = "explicit";
/// Category name reported when one of the user's own blocked terms matched.
pub const USER_CATEGORY: &str = "user";
/// Category name reported when an NSFW flag was set but NSFW is not allowed.
pub const NSFW_CATEGORY: &str = "nsfw";

/// Most admin-defined categories.
pub const MAX_CATEGORIES: usize = 100;
/// Most terms in one category.
pub const MAX_TERMS: usize = 1000;
/// Longest term, characters.
pub const MAX_TERM_CHARS: usize = 100;

const MINORS_TERMS: &[&str] = &[
    "loli",
    "lolis",
    "lolicon",
    "shota",
    "shotacon",
    "underage",
    "under age",
    "preteen",
    "pre teen",
    "jailbait",
    "child porn",
    "child pornography",
    "child nude",
    "nude child",
    "naked child",
    "csam",
    "pedo*",
    "paedo*",
];

const EXPLICIT_TERMS: &[&str] = &[
    "nsfw", "nude", "nudes", "nudity", "naked", "porn*", "sex", "sexual", "hentai", "xxx", "topless", "nipples",
    "genitals", "erotic", "fetish",
];

/// When a category applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Applies {
    /// Always refused, whatever the NSFW settings.
    #[default]
    Always,
    /// Refused unless NSFW is allowed for the user (instance ceiling and user preference), and
    /// not checked in negative prompts (listing a term there steers away from it).
    UnlessNsfw,
}

/// A named list of blocked terms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockedCategory {
    /// Name (1–50 characters: lowercase letters, digits, `_`, `-`).
    pub name: String,
    /// Words or phrases; a trailing `*` matches any word with that start.
    pub terms: Vec<String>,
    /// When it applies (default `always`).
    #[serde(default)]
    pub applies: Applies,
}

/// The instance ceiling the admin sets (what is stored; built-in categories are added on top).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// Whether users may enable NSFW content at all.
    #[serde(default)]
    pub nsfw_allowed: bool,
    /// Admin-defined categories. A category named like a built-in one (`minors`, `explicit`)
    /// adds terms to it; built-in terms cannot be removed.
    #[serde(default)]
    pub categories: Vec<BlockedCategory>,
}

/// A category as the policy applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EffectiveCategory {
    /// Name.
    pub name: String,
    /// Every term (built-in ones first).
    pub terms: Vec<String>,
    /// When it applies.
    pub applies: Applies,
    /// Built in (cannot be removed).
    pub builtin: bool,
}

impl PolicyDocument {
    /// Checks names, sizes and terms; field names are JSON paths.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.categories.len() > MAX_CATEGORIES {
            return Err(ValidationError::new("categories", format!("at most {MAX_CATEGORIES} categories")));
        }
        let mut seen = HashSet::new();
        for (i, c) in self.categories.iter().enumerate() {
            let ok_name = (1..=50).contains(&c.name.len())
                && c.name.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_' || ch == '-');
            if !ok_name {
                return Err(ValidationError::new(
                    format!("categories[{i}].name"),
                    "must be 1–50 characters: lowercase letters, digits, `_` or `-`",
                ));
            }
            if c.name == USER_CATEGORY || c.name == NSFW_CATEGORY {
                return Err(ValidationError::new(format!("categories[{i}].name"), "is reserved"));
            }
            if !seen.insert(c.name.as_str()) {
                return Err(ValidationError::new(format!("categories[{i}].name"), "is used twice"));
            }
            let builtin = builtin_applies(&c.name);
            if builtin.is_some_and(|a| a != c.applies) {
                return Err(ValidationError::new(
                    format!("categories[{i}].applies"),
                    "cannot change when a built-in category applies",
                ));
            }
            validate_terms(&format!("categories[{i}].terms"), &c.terms, MAX_TERMS)?;
        }
        Ok(())
    }

    /// Built-in categories merged with the admin's, built-ins first.
    pub fn effective_categories(&self) -> Vec<EffectiveCategory> {
        let mut out: Vec<EffectiveCategory> =
            [(MINORS, MINORS_TERMS, Applies::Always), (EXPLICIT, EXPLICIT_TERMS, Applies::UnlessNsfw)]
                .into_iter()
                .map(|(name, terms, applies)| EffectiveCategory {
                    name: name.to_owned(),
                    terms: terms.iter().map(|t| (*t).to_owned()).collect(),
                    applies,
                    builtin: true,
                })
                .collect();
        for c in &self.categories {
            if let Some(existing) = out.iter_mut().find(|e| e.builtin && e.name == c.name) {
                for t in &c.terms {
                    if !existing.terms.contains(t) {
                        existing.terms.push(t.clone());
                    }
                }
            } else {
                out.push(EffectiveCategory {
                    name: c.name.clone(),
                    terms: c.terms.clone(),
                    applies: c.applies,
                    builtin: false,
                });
            }
        }
        out
    }
}

fn builtin_applies(name: &str) -> Option<Applies> {
    match name {
        MINORS => Some(Applies::Always),
        EXPLICIT => Some(Applies::UnlessNsfw),
        _ => None,
    }
}

/// Checks a list of terms (count, length, that each folds to at least one word).
pub fn validate_terms(field: &str, terms: &[String], max: usize) -> Result<(), ValidationError> {
    if terms.len() > max {
        return Err(ValidationError::new(field, format!("at most {max} terms")));
    }
    for (j, t) in terms.iter().enumerate() {
        if t.chars().count() > MAX_TERM_CHARS || Term::compile(t).is_none() {
            return Err(ValidationError::new(
                format!("{field}[{j}]"),
                format!("must be 1–{MAX_TERM_CHARS} characters with at least one letter or digit"),
            ));
        }
    }
    Ok(())
}

/// Folds text for matching: NFKD, combining marks dropped, lowercase.
pub fn fold(text: &str) -> String {
    text.nfkd().filter(|c| !is_combining_mark(*c)).flat_map(char::to_lowercase).collect()
}

/// A compiled term: its folded words, and whether the last one is a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    original: String,
    words: Vec<String>,
    prefix: bool,
}

impl Term {
    fn compile(raw: &str) -> Option<Term> {
        let trimmed = raw.trim();
        let prefix = trimmed.ends_with('*');
        let folded = fold(trimmed.trim_end_matches('*'));
        let words: Vec<String> =
            folded.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect();
        if words.is_empty() {
            return None;
        }
        Some(Term { original: trimmed.to_owned(), words, prefix })
    }

    fn word_matches(&self, i: usize, token: &str) -> bool {
        let w = &self.words[i];
        if self.prefix && i + 1 == self.words.len() { token.starts_with(w.as_str()) } else { token == w }
    }

    /// Whether the term occurs in one token stream.
    fn found_in(&self, stream: &Stream) -> bool {
        let n = self.words.len();
        if n == 1 && !self.prefix {
            return stream.set.contains(self.words[0].as_str());
        }
        let tokens = &stream.tokens;
        if tokens.len() >= n
            && tokens.windows(n).any(|win| win.iter().enumerate().all(|(i, t)| self.word_matches(i, t)))
        {
            return true;
        }
        // Written as one word: "childporn", "pre-teen" → "preteen".
        if n > 1 {
            let joined: String = self.words.concat();
            return tokens.iter().any(|t| if self.prefix { t.starts_with(&joined) } else { *t == joined });
        }
        false
    }
}

/// One way of cutting a text into words.
#[derive(Debug)]
struct Stream {
    tokens: Vec<String>,
    set: HashSet<String>,
}

impl Stream {
    fn new(tokens: Vec<String>) -> Stream {
        let set = tokens.iter().cloned().collect();
        Stream { tokens, set }
    }
}

/// Joins runs of two or more single-character tokens ("n s f w" → "nsfw").
fn collapse_singles(tokens: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(tokens.len());
    let mut run = String::new();
    let mut run_len = 0;
    let flush = |out: &mut Vec<String>, run: &mut String, run_len: &mut usize| {
        if *run_len > 0 {
            out.push(std::mem::take(run));
        }
        *run_len = 0;
    };
    for t in tokens {
        if t.chars().count() == 1 {
            run.push_str(t);
            run_len += 1;
        } else {
            flush(&mut out, &mut run, &mut run_len);
            out.push(t.clone());
        }
    }
    flush(&mut out, &mut run, &mut run_len);
    out
}

/// Undoes digit substitutions inside words that also hold letters ("s3x" → "sex").
fn unleet(token: &str) -> String {
    if !(token.chars().any(char::is_alphabetic) && token.chars().any(|c| c.is_ascii_digit())) {
        return token.to_owned();
    }
    token
        .chars()
        .map(|c| match c {
            '0' => 'o',
            '1' => 'i',
            '3' => 'e',
            '4' => 'a',
            '5' => 's',
            '7' => 't',
            '8' => 'b',
            other => other,
        })
        .collect()
}

/// The token streams a text is matched in (see the module documentation).
fn streams(text: &str) -> Vec<Stream> {
    let folded = fold(text);
    // Words split at every non-alphanumeric character.
    let words: Vec<String> =
        folded.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_owned).collect();
    // Chunks split at whitespace only, punctuation inside dropped: "n.s.f.w" → "nsfw".
    let chunks: Vec<String> = folded
        .split(char::is_whitespace)
        .map(|chunk| {
            let mapped: String = chunk
                .chars()
                .map(|c| match c {
                    '@' => 'a',
                    '$' => 's',
                    other => other,
                })
                .filter(|c| c.is_alphanumeric())
                .collect();
            unleet(&mapped)
        })
        .filter(|w| !w.is_empty())
        .collect();
    let mut out: Vec<Vec<String>> = Vec::with_capacity(4);
    for candidate in [collapse_singles(&words), collapse_singles(&chunks), chunks, words] {
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out.into_iter().map(Stream::new).collect()
}

#[derive(Debug, Clone)]
struct CompiledCategory {
    name: String,
    applies: Applies,
    terms: Vec<Term>,
}

/// A policy ready for evaluation: the admin's document with built-ins, terms pre-folded.
#[derive(Debug, Clone)]
pub struct CompiledPolicy {
    /// Version of the stored document (0 = never saved: the defaults).
    pub version: i64,
    /// The instance ceiling for NSFW.
    pub nsfw_allowed: bool,
    categories: Vec<CompiledCategory>,
}

impl CompiledPolicy {
    /// Compiles a document (terms that fold to nothing are skipped; `validate` refuses them).
    pub fn compile(version: i64, doc: &PolicyDocument) -> CompiledPolicy {
        let mut categories: Vec<CompiledCategory> = doc
            .effective_categories()
            .into_iter()
            .map(|c| CompiledCategory {
                name: c.name,
                applies: c.applies,
                terms: c.terms.iter().filter_map(|t| Term::compile(t)).collect(),
            })
            .collect();
        // `always` categories are checked first so the most serious rule is the one reported.
        categories.sort_by_key(|c| c.applies != Applies::Always);
        CompiledPolicy { version, nsfw_allowed: doc.nsfw_allowed, categories }
    }
}

/// The user's content preferences, within the instance ceiling.
#[derive(Debug, Clone, Default)]
pub struct UserPrefs {
    /// The user enabled NSFW and confirmed their age (the ceiling is applied by [`evaluate`]).
    pub nsfw: bool,
    /// Extra terms the user never wants to generate.
    pub blocked_terms: Vec<String>,
}

/// One text to check.
#[derive(Debug, Clone)]
pub struct Field<'a> {
    /// JSON path reported on a match (`prompt`, `persona.prompt_template`…).
    pub name: String,
    /// The text.
    pub text: &'a str,
    /// A negative prompt: only `always` categories apply to it.
    pub negative: bool,
}

/// What is being checked: texts, and where an NSFW flag was set (if any).
#[derive(Debug, Clone, Default)]
pub struct Subject<'a> {
    /// Texts, in the order they are reported.
    pub fields: Vec<Field<'a>>,
    /// JSON path of an NSFW flag that is set (`nsfw`, `persona.nsfw`).
    pub nsfw_flag: Option<String>,
}

/// Which kind of rule refused the content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// An instance category's term.
    BlockedTerm,
    /// One of the user's own blocked terms.
    UserBlockedTerm,
    /// NSFW content (flag or `unless_nsfw` category) while NSFW is not allowed.
    NsfwNotAllowed,
}

/// The rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Violation {
    /// Kind of rule.
    pub rule: RuleKind,
    /// Category name (`minors`, `explicit`, an admin's, `user` or `nsfw`).
    pub category: String,
    /// The term as written in the policy (absent for an NSFW flag).
    pub term: Option<String>,
    /// JSON path of the field that matched.
    pub field: String,
}

impl Violation {
    /// A sentence for the client.
    pub fn message(&self) -> String {
        match &self.term {
            Some(term) => format!(
                "refused by the content policy: {} matches the blocked term \"{term}\" (category {})",
                self.field, self.category
            ),
            None => format!("refused by the content policy: `{}` is set but NSFW content is not allowed", self.field),
        }
    }
}

/// Decides whether the subject is allowed for this user under this policy. `Err` names the
/// first rule that matched: `always` categories, then the user's terms, then NSFW rules.
pub fn evaluate(policy: &CompiledPolicy, user: &UserPrefs, subject: &Subject<'_>) -> Result<(), Violation> {
    let nsfw_ok = policy.nsfw_allowed && user.nsfw;
    let fields: Vec<(&Field<'_>, Vec<Stream>)> = subject.fields.iter().map(|f| (f, streams(f.text))).collect();
    let find = |terms: &[Term], negatives: bool| -> Option<(String, String)> {
        for (field, streams) in &fields {
            if field.negative && !negatives {
                continue;
            }
            for term in terms {
                if streams.iter().any(|s| term.found_in(s)) {
                    return Some((term.original.clone(), field.name.clone()));
                }
            }
        }
        None
    };
    for c in policy.categories.iter().filter(|c| c.applies == Applies::Always) {
        if let Some((term, field)) = find(&c.terms, true) {
            return Err(Violation { rule: RuleKind::BlockedTerm, category: c.name.clone(), term: Some(term), field });
        }
    }
    let user_terms: Vec<Term> = user.blocked_terms.iter().filter_map(|t| Term::compile(t)).collect();
    if let Some((term, field)) = find(&user_terms, false) {
        return Err(Violation {
            rule: RuleKind::UserBlockedTerm,
            category: USER_CATEGORY.to_owned(),
            term: Some(term),
            field,
        });
    }
    if !nsfw_ok {
        if let Some(flag) = &subject.nsfw_flag {
            return Err(Violation {
                rule: RuleKind::NsfwNotAllowed,
                category: NSFW_CATEGORY.to_owned(),
                term: None,
                field: flag.clone(),
            });
        }
        for c in policy.categories.iter().filter(|c| c.applies == Applies::UnlessNsfw) {
            if let Some((term, field)) = find(&c.terms, false) {
                return Err(Violation {
                    rule: RuleKind::NsfwNotAllowed,
                    category: c.name.clone(),
                    term: Some(term),
                    field,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(nsfw_allowed: bool, extra: &[(&str, &[&str])]) -> CompiledPolicy {
        let doc = PolicyDocument {
            nsfw_allowed,
            categories: extra
                .iter()
                .map(|(name, terms)| BlockedCategory {
                    name: (*name).to_owned(),
                    terms: terms.iter().map(|t| (*t).to_owned()).collect(),
                    applies: Applies::Always,
                })
                .collect(),
        };
        CompiledPolicy::compile(7, &doc)
    }

    fn prompt(text: &str) -> Subject<'_> {
        Subject { fields: vec![Field { name: "prompt".into(), text, negative: false }], nsfw_flag: None }
    }

    fn check(p: &CompiledPolicy, text: &str) -> Result<(), Violation> {
        evaluate(p, &UserPrefs::default(), &prompt(text))
    }

    fn hit(p: &CompiledPolicy, text: &str) -> (String, String) {
        let v = check(p, text).expect_err(text);
        (v.category, v.term.unwrap_or_default())
    }

    #[test]
    fn innocent_prompts_pass() {
        let p = policy(false, &[("insults", &["ass"])]);
        for text in [
            "a castle at dawn, oil painting",
            "first class passenger on a train",
            "grass and glass",
            "massive bass guitar",
            "Sussex countryside",      // contains "sex" inside a word
            "a pediatrician's office", // not "pedo*": starts with "pedi"
            "essex classic assassin",
        ] {
            assert_eq!(check(&p, text), Ok(()), "{text}");
        }
    }

    #[test]
    fn whole_words_and_phrases_match() {
        let p = policy(false, &[("insults", &["ass", "dumb fool"])]);
        assert_eq!(hit(&p, "kick his ass"), ("insults".into(), "ass".into()));
        assert_eq!(hit(&p, "ASS!"), ("insults".into(), "ass".into()));
        assert_eq!(hit(&p, "you dumb  fool"), ("insults".into(), "dumb fool".into()));
        assert_eq!(hit(&p, "you dumb-fool"), ("insults".into(), "dumb fool".into()));
        assert_eq!(hit(&p, "you dumbfool"), ("insults".into(), "dumb fool".into()));
        assert_eq!(check(&p, "dumb people fool around"), Ok(()));
    }

    #[test]
    fn evasions_are_caught() {
        let p = policy(false, &[]);
        for text in [
            "nsfw art",
            "NSFW art",
            "n.s.f.w art",
            "n s f w art",
            "n  s  f  w",
            "n-s-f-w",
            "n_s_f_w",
            "ｎｓｆｗ",      // full-width
            "𝐧𝐬𝐟𝐰 portrait", // mathematical bold
            "nsfw\u{200b}",
            "ns\u{200b}fw",
        ] {
            assert_eq!(hit(&p, text), ("explicit".into(), "nsfw".into()), "{text}");
        }
        assert_eq!(hit(&p, "a s3x scene"), ("explicit".into(), "sex".into()));
        assert_eq!(hit(&p, "nu.de"), ("explicit".into(), "nude".into()));
        assert_eq!(hit(&p, "nùde"), ("explicit".into(), "nude".into()));
        assert_eq!(hit(&p, "p0rn"), ("explicit".into(), "porn*".into()));
        assert_eq!(hit(&p, "pornographic"), ("explicit".into(), "porn*".into()));
        assert_eq!(hit(&p, "l0li"), ("minors".into(), "loli".into()));
        assert_eq!(hit(&p, "pre-teen girl"), ("minors".into(), "preteen".into()));
        assert_eq!(hit(&p, "pre teen girl"), ("minors".into(), "pre teen".into()));
        assert_eq!(hit(&p, "preteen"), ("minors".into(), "preteen".into()));
        assert_eq!(hit(&p, "naked ch1ld"), ("minors".into(), "naked child".into()));
    }

    #[test]
    fn minors_always_blocked_even_with_nsfw() {
        let p = policy(true, &[]);
        let user = UserPrefs { nsfw: true, blocked_terms: vec![] };
        let v = evaluate(&p, &user, &prompt("underage model")).expect_err("blocked");
        assert_eq!(v.category, MINORS);
        assert_eq!(v.rule, RuleKind::BlockedTerm);
        assert_eq!(evaluate(&p, &user, &prompt("nude figure study")), Ok(()));
    }

    #[test]
    fn nsfw_needs_both_ceiling_and_user() {
        let subject = prompt("nude figure study");
        let on = UserPrefs { nsfw: true, blocked_terms: vec![] };
        let off = UserPrefs::default();
        assert!(evaluate(&policy(false, &[]), &on, &subject).is_err(), "ceiling wins");
        assert!(evaluate(&policy(true, &[]), &off, &subject).is_err(), "user preference applies");
        assert_eq!(evaluate(&policy(true, &[]), &on, &subject), Ok(()));
        let v = evaluate(&policy(false, &[]), &on, &subject).expect_err("refused");
        assert_eq!(v.rule, RuleKind::NsfwNotAllowed);
        assert_eq!(v.field, "prompt");
    }

    #[test]
    fn nsfw_flag_refused_when_not_allowed() {
        let subject = Subject { fields: vec![], nsfw_flag: Some("persona.nsfw".into()) };
        let v = evaluate(&policy(false, &[]), &UserPrefs { nsfw: true, ..Default::default() }, &subject)
            .expect_err("refused");
        assert_eq!((v.category.as_str(), v.term.as_deref(), v.field.as_str()), (NSFW_CATEGORY, None, "persona.nsfw"));
        assert!(v.message().contains("persona.nsfw"));
        assert_eq!(evaluate(&policy(true, &[]), &UserPrefs { nsfw: true, ..Default::default() }, &subject), Ok(()));
    }

    #[test]
    fn negative_prompts_only_see_always_categories() {
        let p = policy(false, &[]);
        let user = UserPrefs { nsfw: false, blocked_terms: vec!["clown".into()] };
        let subject = Subject {
            fields: vec![
                Field { name: "prompt".into(), text: "a portrait", negative: false },
                Field { name: "negative_prompt".into(), text: "nsfw, nude, clown", negative: true },
            ],
            nsfw_flag: None,
        };
        assert_eq!(evaluate(&p, &user, &subject), Ok(()));
        let subject = Subject {
            fields: vec![Field { name: "negative_prompt".into(), text: "lolicon", negative: true }],
            nsfw_flag: None,
        };
        let v = evaluate(&p, &user, &subject).expect_err("minors in negatives");
        assert_eq!((v.category.as_str(), v.field.as_str()), (MINORS, "negative_prompt"));
    }

    #[test]
    fn user_terms_and_field_order() {
        let p = policy(true, &[]);
        let user = UserPrefs { nsfw: true, blocked_terms: vec!["Clowns".into()] };
        let subject = Subject {
            fields: vec![
                Field { name: "persona.prompt_template".into(), text: "circus, {prompt}", negative: false },
                Field { name: "prompt".into(), text: "sad CLOWNS", negative: false },
            ],
            nsfw_flag: None,
        };
        let v = evaluate(&p, &user, &subject).expect_err("user term");
        assert_eq!(v.rule, RuleKind::UserBlockedTerm);
        assert_eq!(
            (v.category.as_str(), v.term.as_deref(), v.field.as_str()),
            (USER_CATEGORY, Some("Clowns"), "prompt")
        );
        let subject = Subject {
            fields: vec![
                Field { name: "persona.prompt_template".into(), text: "shotacon style, {prompt}", negative: false },
                Field { name: "prompt".into(), text: "shotacon style, sad clowns", negative: false },
            ],
            nsfw_flag: None,
        };
        let v = evaluate(&p, &user, &subject).expect_err("minors first");
        assert_eq!((v.category.as_str(), v.field.as_str()), (MINORS, "persona.prompt_template"));
    }

    #[test]
    fn admin_terms_extend_builtins_and_validate() {
        let doc = PolicyDocument {
            nsfw_allowed: false,
            categories: vec![BlockedCategory {
                name: "minors".into(),
                terms: vec!["toddler".into()],
                applies: Applies::Always,
            }],
        };
        assert_eq!(doc.validate(), Ok(()));
        let cats = doc.effective_categories();
        let minors = cats.iter().find(|c| c.name == MINORS).expect("minors");
        assert!(
            minors.builtin && minors.terms.contains(&"loli".to_owned()) && minors.terms.contains(&"toddler".to_owned())
        );
        let p = CompiledPolicy::compile(1, &doc);
        assert_eq!(hit(&p, "a toddler").0, MINORS);
        // The built-in cannot be moved to `unless_nsfw`.
        let bad = PolicyDocument {
            nsfw_allowed: true,
            categories: vec![BlockedCategory { name: "minors".into(), terms: vec![], applies: Applies::UnlessNsfw }],
        };
        assert_eq!(bad.validate().expect_err("refused").field, "categories[0].applies");
        let bad = PolicyDocument {
            nsfw_allowed: true,
            categories: vec![BlockedCategory { name: "Gore".into(), terms: vec![], applies: Applies::Always }],
        };
        assert_eq!(bad.validate().expect_err("refused").field, "categories[0].name");
        let bad = PolicyDocument {
            nsfw_allowed: true,
            categories: vec![BlockedCategory {
                name: "gore".into(),
                terms: vec!["ok".into(), " .. ".into()],
                applies: Applies::Always,
            }],
        };
        assert_eq!(bad.validate().expect_err("refused").field, "categories[0].terms[1]");
    }

    #[test]
    fn admin_unless_nsfw_category() {
        let doc = PolicyDocument {
            nsfw_allowed: true,
            categories: vec![BlockedCategory {
                name: "gore".into(),
                terms: vec!["gore*".into()],
                applies: Applies::UnlessNsfw,
            }],
        };
        let p = CompiledPolicy::compile(2, &doc);
        assert_eq!(hit(&p, "gory? no, gorefest").0, "gore");
        let on = UserPrefs { nsfw: true, blocked_terms: vec![] };
        assert_eq!(evaluate(&p, &on, &prompt("gorefest")), Ok(()));
    }

    #[test]
    fn fold_is_nfkd_lowercase_without_marks() {
        assert_eq!(fold("ÉCOLE ﬁne Ｘ"), "ecole fine x");
    }
}
