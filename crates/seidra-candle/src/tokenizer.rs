//! A minimal CLIP BPE tokenizer reading a diffusers `tokenizer/vocab.json` + `merges.txt`.
//!
//! Why not the `tokenizers` crate: it needs a regex engine feature (`onig`, a C library, or
//! `fancy-regex`) and about 40 more crates, while CLIP's tokenizer is a lower-cased,
//! byte-level BPE with a `</w>` word suffix that fits in a page. Differences from the
//! reference: text is split on Unicode letter/number/other classes by hand instead of the
//! original regex, which gives the same pieces for ordinary prompts.

use std::collections::HashMap;
use std::path::Path;

use crate::CandleError;

const START: &str = "<|startoftext|>";
const END: &str = "<|endoftext|>";

/// A CLIP tokenizer.
#[derive(Debug, Clone)]
pub struct ClipTokenizer {
    encoder: HashMap<String, u32>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    start_id: u32,
    end_id: u32,
}

impl ClipTokenizer {
    /// Reads `vocab.json` and `merges.txt` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, CandleError> {
        let vocab = std::fs::read(dir.join("vocab.json")).map_err(|e| CandleError::io(&dir.join("vocab.json"), &e))?;
        let encoder: HashMap<String, u32> = serde_json::from_slice(&vocab)
            .map_err(|e| CandleError::Model(format!("{}: {e}", dir.join("vocab.json").display())))?;
        let merges = std::fs::read_to_string(dir.join("merges.txt"))
            .map_err(|e| CandleError::io(&dir.join("merges.txt"), &e))?;
        Self::new(encoder, &merges)
    }

    /// A tokenizer from a vocabulary and the text of a merges file (first line is a header when it starts with `#`).
    pub fn new(encoder: HashMap<String, u32>, merges: &str) -> Result<Self, CandleError> {
        let ranks = merges
            .lines()
            .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
            .filter_map(|l| l.split_once(' ').map(|(a, b)| (a.to_owned(), b.to_owned())))
            .enumerate()
            .map(|(rank, pair)| (pair, rank))
            .collect();
        let id = |token: &str| {
            encoder
                .get(token)
                .copied()
                .ok_or_else(|| CandleError::Model(format!("the tokenizer vocabulary lacks {token}")))
        };
        let (start_id, end_id) = (id(START)?, id(END)?);
        Ok(Self { encoder, ranks, byte_chars: bytes_to_unicode(), start_id, end_id })
    }

    /// Token id of the end-of-text marker.
    pub fn end_id(&self) -> u32 {
        self.end_id
    }

    /// Id of a single token (`!` is the padding of SD 2.x), if in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.encoder.get(token).copied()
    }

    /// `<start> tokens… <end>` padded with `pad` (or truncated, keeping the end marker) to `len`.
    pub fn encode_padded(&self, text: &str, len: usize, pad: u32) -> Vec<u32> {
        let mut ids = vec![self.start_id];
        for word in split_words(&clean(text)) {
            ids.extend(self.bpe(&word));
        }
        ids.truncate(len.saturating_sub(1));
        ids.push(self.end_id);
        ids.resize(len, pad);
        ids
    }

    /// BPE of one pre-split word; pieces missing from the vocabulary are skipped.
    fn bpe(&self, word: &str) -> Vec<u32> {
        let mut parts: Vec<String> = word.bytes().map(|b| self.byte_chars[usize::from(b)].to_string()).collect();
        if let Some(last) = parts.last_mut() {
            last.push_str("</w>");
        }
        loop {
            let best = parts
                .windows(2)
                .enumerate()
                .filter_map(|(i, w)| self.ranks.get(&(w[0].clone(), w[1].clone())).map(|rank| (*rank, i)))
                .min();
            let Some((_, i)) = best else { break };
            let merged = format!("{}{}", parts[i], parts[i + 1]);
            parts.splice(i..i + 2, [merged]);
        }
        parts.iter().filter_map(|p| self.encoder.get(p).copied()).collect()
    }
}

/// Lower-cases and collapses whitespace, as CLIP's `whitespace_clean` + `lower` do.
fn clean(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Splits like CLIP's pattern: runs of letters, single digits, runs of other non-space
/// characters, and the contractions `'s 't 're 've 'm 'll 'd`.
fn split_words(text: &str) -> Vec<String> {
    #[derive(PartialEq, Clone, Copy)]
    enum Class {
        Letter,
        Other,
    }
    let mut words = Vec::new();
    let mut current = String::new();
    let mut class = None;
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            let rest: String = chars[i + 1..].iter().take(2).collect();
            let suffix = ["ll", "re", "ve", "s", "t", "m", "d"].into_iter().find(|s| rest.starts_with(s));
            if let Some(suffix) = suffix {
                words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
                words.push(format!("'{suffix}"));
                class = None;
                i += 1 + suffix.len();
                continue;
            }
        }
        if c.is_whitespace() {
            words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            class = None;
        } else if c.is_numeric() {
            words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            words.push(c.to_string());
            class = None;
        } else {
            let this = if c.is_alphabetic() { Class::Letter } else { Class::Other };
            if class != Some(this) {
                words.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            }
            current.push(c);
            class = Some(this);
        }
        i += 1;
    }
    words.extend((!current.is_empty()).then_some(current));
    words
}

/// GPT-2's reversible byte → printable character table.
pub(crate) fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let code = if printable {
            u32::from(b)
        } else {
            extra += 1;
            255 + extra
        };
        table[usize::from(b)] = char::from_u32(code).unwrap_or('?');
    }
    table
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn splits_and_merges_like_clip() {
        assert_eq!(split_words("a red fox's 2 tails!!"), ["a", "red", "fox", "'s", "2", "tails", "!!"]);
        let vocab: HashMap<String, u32> =
            [("<|startoftext|>", 0), ("<|endoftext|>", 1), ("f", 2), ("o", 3), ("fo", 4), ("x</w>", 5), ("fox</w>", 6)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
        let tok = ClipTokenizer::new(vocab, "#version: 0.2\nf o\nfo x</w>\n").unwrap();
        assert_eq!(tok.encode_padded("  FOX ", 5, 1), [0, 6, 1, 1, 1]);
        assert_eq!(tok.encode_padded("fox fox fox", 3, 1), [0, 6, 1], "truncated, end marker kept");
        assert_eq!(bytes_to_unicode()[usize::from(b' ')], 'Ġ');
    }
}
