//! The Lambda invocation payload.
//!
//! Any JSON object is accepted. A scheduled event (EventBridge rule or
//! EventBridge Scheduler) runs with the configured defaults and its envelope
//! is ignored; a manual payload may narrow the run. Nothing in a payload can
//! change the bucket, the KMS key or the source directory.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// How one invocation narrows the configured run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Back up only this sub-directory of the source (keys stay relative to the source).
    #[serde(default)]
    pub subdir: Option<String>,
    /// Extra prefix inserted between the configured prefix and the file keys.
    #[serde(default)]
    pub sub_prefix: Option<String>,
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Read and hash every file, trusting no size, time and inode match.
    #[serde(default)]
    pub verify: Option<bool>,
    /// Include globs; a file must match these and the configured filter.
    #[serde(default)]
    pub include: Vec<String>,
    /// Further exclude globs.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl RunRequest {
    pub fn from_event(event: &Value) -> Result<Self> {
        match event {
            Value::Null => Ok(Self::default()),
            Value::Object(_) if is_scheduled(event) => Ok(Self::default()),
            Value::Object(_) => RunRequest::deserialize(event).map_err(|err| {
                Error::Event(format!(
                    "{err}; a manual run accepts subdir, sub_prefix, dry_run, verify, include and exclude"
                ))
            }),
            other => Err(Error::Event(format!(
                "expected a JSON object, got {}",
                kind_of(other)
            ))),
        }
    }
}

/// An EventBridge envelope (`detail-type`, `source`, `detail`), as a rule or a
/// schedule sends it.
fn is_scheduled(event: &Value) -> bool {
    EventBridgeEvent::<Value>::deserialize(event).is_ok()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scheduled_envelope_is_ignored() {
        let event = json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event",
            "source": "aws.events", "detail": {"subdir": "../etc"}
        });
        assert_eq!(
            RunRequest::from_event(&event).unwrap(),
            RunRequest::default()
        );
        assert_eq!(
            RunRequest::from_event(&json!({})).unwrap(),
            RunRequest::default()
        );
        assert_eq!(
            RunRequest::from_event(&Value::Null).unwrap(),
            RunRequest::default()
        );
    }

    #[test]
    fn manual_payload_narrows() {
        let event =
            json!({"subdir": "a", "sub_prefix": "p", "dry_run": true, "exclude": ["*.tmp"]});
        let request = RunRequest::from_event(&event).unwrap();
        assert_eq!(request.subdir.as_deref(), Some("a"));
        assert_eq!(request.dry_run, Some(true));
        assert_eq!(request.exclude, vec!["*.tmp"]);
    }

    /// The samples in events/ are what a schedule or a person sends.
    #[test]
    fn sample_events_are_well_formed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("events");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let event: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap();
            let request = RunRequest::from_event(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name.starts_with("scheduled") {
                assert!(
                    is_scheduled(&event),
                    "{name} is not an EventBridge envelope"
                );
                assert_eq!(request, RunRequest::default());
            } else {
                assert!(
                    !is_scheduled(&event),
                    "{name} would be taken for a schedule"
                );
                assert_ne!(request, RunRequest::default(), "{name} narrows nothing");
            }
        }
    }

    #[test]
    fn unknown_fields_and_non_objects_are_refused() {
        for event in [
            json!({"bucket": "other"}),
            json!({"kms_key_id": "k"}),
            json!([1]),
            json!("x"),
        ] {
            assert!(
                matches!(RunRequest::from_event(&event), Err(Error::Event(_))),
                "{event} was accepted"
            );
        }
    }
}
