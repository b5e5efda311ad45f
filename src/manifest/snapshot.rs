//! What a manifest says of the snapshot it is, kept with its object as
//! user metadata so "latest" is chosen by a HEAD, not by reading bodies.

use super::read::Header;
use super::{RunStatus, Summary};

/// Whether a manifest may stand for the source as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// Every file found was processed, and the source looked whole.
    Complete,
    /// The run stopped before it processed every file (time limit, lost
    /// lock, an interrupt): files it did not reach are missing from it,
    /// unless it carried their records.
    Incomplete,
    /// The emptied-source guard stopped it: the source held far fewer files
    /// than the last complete run (a file system not mounted, say).
    SourceShrunk,
}

impl Snapshot {
    pub fn of(complete: bool, summary: &Summary) -> Snapshot {
        if summary.source_shrunk.is_some() {
            Snapshot::SourceShrunk
        } else if complete {
            Snapshot::Complete
        } else {
            Snapshot::Incomplete
        }
    }

    pub fn of_header(header: &Header) -> Snapshot {
        match &header.summary {
            Some(summary) => Snapshot::of(header.complete, summary),
            None if header.complete => Snapshot::Complete,
            None => Snapshot::Incomplete,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Snapshot::Complete => "complete",
            Snapshot::Incomplete => "incomplete",
            Snapshot::SourceShrunk => "source-shrunk",
        }
    }

    pub fn parse(text: &str) -> Option<Snapshot> {
        [
            Snapshot::Complete,
            Snapshot::Incomplete,
            Snapshot::SourceShrunk,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// Why "latest" passes over a snapshot in this state, if it does.
    pub fn passed_over_because(self) -> Option<&'static str> {
        match self {
            Snapshot::Complete => None,
            Snapshot::Incomplete => Some("the run that wrote it did not finish"),
            Snapshot::SourceShrunk => Some(
                "the emptied-source guard stopped its run (the source held far fewer files than before)",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_only_a_complete_one_stands_for_latest() {
        for state in [
            Snapshot::Complete,
            Snapshot::Incomplete,
            Snapshot::SourceShrunk,
        ] {
            assert_eq!(Snapshot::parse(state.as_str()), Some(state));
            assert_eq!(
                state.passed_over_because().is_none(),
                state == Snapshot::Complete
            );
        }
        assert_eq!(Snapshot::parse("done"), None);
    }
}

/// How a run came to write a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A run over the whole source (under its configured globs).
    Full,
    /// A run over part of the source (an event's sub-directory or filter).
    Narrowed,
    /// A sharded run's merged manifest.
    Sharded,
}

/// What `snapshots` shows of a manifest without reading its body: kept
/// with its object as user metadata (`x-amz-meta-facts`), one small value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facts {
    pub kind: Kind,
    pub status: RunStatus,
    /// Files with an object, and their bytes.
    pub files: u64,
    pub bytes: u64,
}

impl Facts {
    pub fn to_metadata(self) -> String {
        let word = |value: serde_json::Value| value.as_str().unwrap_or_default().to_owned();
        format!(
            "kind={} status={} files={} bytes={}",
            word(serde_json::json!(self.kind)),
            word(serde_json::json!(self.status)),
            self.files,
            self.bytes
        )
    }

    pub fn parse(text: &str) -> Option<Facts> {
        let field = |name: &str| {
            text.split(' ')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let quoted = |name| serde_json::Value::String(field(name).unwrap_or_default().to_owned());
        Some(Facts {
            kind: serde_json::from_value(quoted("kind")).ok()?,
            status: serde_json::from_value(quoted("status")).ok()?,
            files: field("files")?.parse().ok()?,
            bytes: field("bytes")?.parse().ok()?,
        })
    }
}

#[cfg(test)]
mod facts_tests {
    use super::*;

    #[test]
    fn facts_round_trip_through_metadata() {
        let facts = Facts {
            kind: Kind::Sharded,
            status: RunStatus::Partial,
            files: 12,
            bytes: 3456,
        };
        let text = facts.to_metadata();
        assert_eq!(text, "kind=sharded status=partial files=12 bytes=3456");
        assert_eq!(Facts::parse(&text), Some(facts));
        assert_eq!(Facts::parse("kind=full"), None);
    }
}
