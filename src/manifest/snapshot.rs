//! What a manifest says of the snapshot it is, kept with its object as
//! user metadata so "latest" is chosen by a HEAD, not by reading bodies.

use super::Summary;
use super::read::Header;

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
