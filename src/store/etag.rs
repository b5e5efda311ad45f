//! ETags held compactly: a run keeps one per file of the last manifest and
//! one per listed object, so at a million files the text form (a heap
//! string of 34 bytes or more each) would be most of the run's memory.
//! The ETag stays an opaque version token: it is never read as an MD5.

use std::fmt;

/// An ETag as S3 sends it, quotes included. Nearly every ETag is 32
/// lower-case hex digits, with a part count after a multipart upload; those
/// are kept as 20 bytes, anything else as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Etag {
    Hex {
        digits: [u8; 16],
        parts: Option<u32>,
    },
    Text(Box<str>),
}

impl Etag {
    pub fn new(text: &str) -> Self {
        Self::packed(text).unwrap_or_else(|| Etag::Text(text.into()))
    }

    /// The 20-byte form, only when it gives back exactly `text`.
    fn packed(text: &str) -> Option<Self> {
        let inner = text.strip_prefix('"')?.strip_suffix('"')?;
        let (hex, parts) = match inner.split_once('-') {
            Some((hex, parts)) => (hex, Some(parts)),
            None => (inner, None),
        };
        if hex.len() != 32 || hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let mut digits = [0u8; 16];
        hex::decode_to_slice(hex, &mut digits).ok()?;
        let parts = match parts {
            None => None,
            Some(p) if p.starts_with('0') || p.starts_with('+') => return None,
            Some(p) => Some(p.parse().ok()?),
        };
        Some(Etag::Hex { digits, parts })
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Etag::Hex { digits, parts } => {
                write!(f, "\"{}", hex::encode(digits))?;
                if let Some(parts) = parts {
                    write!(f, "-{parts}")?;
                }
                f.write_str("\"")
            }
            Etag::Text(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_etag_reads_back_as_it_was_sent() {
        for text in [
            "\"9b2cf535f27731c974343645a3985328\"",
            "\"9b2cf535f27731c974343645a3985328-12\"",
            "\"9B2CF535F27731C974343645A3985328\"",
            "\"9b2cf535f27731c974343645a3985328-012\"",
            "9b2cf535f27731c974343645a3985328",
            "\"short\"",
            "W/\"weak\"",
            "",
        ] {
            assert_eq!(Etag::new(text).to_string(), text);
        }
        assert!(matches!(
            Etag::new("\"9b2cf535f27731c974343645a3985328-3\""),
            Etag::Hex { parts: Some(3), .. }
        ));
        assert!(std::mem::size_of::<Etag>() <= 24);
    }
}
