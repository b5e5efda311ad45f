//! The Lambda invocation payload: one tagged enum of what an invocation asks.
//!
//! Any JSON object is accepted. A scheduled event (EventBridge rule or
//! EventBridge Scheduler) runs `sync` with the configured defaults and its
//! envelope is ignored. A manual payload names its command in `command`
//! (default `sync`); the other fields are that command's request.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

use crate::commands::audit::{AuditRequest, options::FIELDS as AUDIT_FIELDS};
use crate::commands::forget::ForgetOptions;
use crate::commands::sync::sharded::merge::MergeRequest;
use crate::commands::sync::sharded::plan::PlanRequest;
use crate::commands::sync::{SyncRequest, request::FIELDS};
use crate::commands::verify::{VerifyRequest, options::FIELDS as VERIFY_FIELDS};
use crate::error::{Error, Result};

/// The field that names the command.
const COMMAND: &str = "command";

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    Sync(SyncRequest),
    Verify(VerifyRequest),
    Audit(AuditRequest),
    /// The first step of a sharded run (a Step Functions state machine).
    Plan(PlanRequest),
    /// The last step of a sharded run.
    Merge(MergeRequest),
    /// Retention: the policy and whether to prune are in the event.
    Forget(ForgetOptions),
}

impl Invocation {
    pub fn from_event(event: &Value) -> Result<Self> {
        let fields = match event {
            Value::Null => return Ok(Invocation::Sync(SyncRequest::default())),
            Value::Object(_) if is_scheduled(event) => {
                return Ok(Invocation::Sync(SyncRequest::default()));
            }
            Value::Object(fields) => fields,
            other => {
                return Err(Error::Event(format!(
                    "expected a JSON object, got {}",
                    kind_of(other)
                )));
            }
        };
        let mut fields = fields.clone();
        let command = fields.remove(COMMAND);
        let fields = Value::Object(fields);
        let refused = |err: serde_json::Error, name, accepted| {
            Error::Event(format!("{err}; a {name} request accepts {accepted}"))
        };
        match command.as_ref().and_then(Value::as_str) {
            None if command.is_none() => {}
            Some("sync") => {}
            Some("verify") => {
                return VerifyRequest::deserialize(fields)
                    .map(Invocation::Verify)
                    .map_err(|err| refused(err, "verify", VERIFY_FIELDS));
            }
            Some("audit") => {
                return AuditRequest::deserialize(fields)
                    .map(Invocation::Audit)
                    .map_err(|err| refused(err, "audit", AUDIT_FIELDS));
            }
            Some("plan") => {
                return PlanRequest::deserialize(fields)
                    .map(Invocation::Plan)
                    .map_err(|err| refused(err, "plan", "no other field"));
            }
            Some("forget") => {
                return ForgetOptions::from_event(fields).map(Invocation::Forget);
            }
            Some("merge") => {
                return MergeRequest::deserialize(fields)
                    .map(Invocation::Merge)
                    .map_err(|err| refused(err, "merge", "run_id"));
            }
            _ => {
                return Err(Error::Event(format!(
                    "unknown command {}; this function runs \"sync\", \"verify\", \"audit\", \"forget\", \"plan\" and \"merge\"",
                    command.unwrap_or_default()
                )));
            }
        }
        SyncRequest::deserialize(fields)
            .map(Invocation::Sync)
            .map_err(|err| refused(err, "sync", FIELDS))
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
    use crate::commands::verify::ReadShare;
    use serde_json::json;

    fn sync(request: SyncRequest) -> Invocation {
        Invocation::Sync(request)
    }

    #[test]
    fn scheduled_envelope_is_ignored() {
        let event = json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event",
            "source": "aws.events", "detail": {"subdir": "../etc"}
        });
        assert_eq!(
            Invocation::from_event(&event).unwrap(),
            sync(SyncRequest::default())
        );
        assert_eq!(
            Invocation::from_event(&json!({})).unwrap(),
            sync(SyncRequest::default())
        );
        assert_eq!(
            Invocation::from_event(&Value::Null).unwrap(),
            sync(SyncRequest::default())
        );
    }

    #[test]
    fn manual_payload_narrows() {
        let event =
            json!({"subdir": "a", "sub_prefix": "p", "dry_run": true, "exclude": ["*.tmp"]});
        let Ok(Invocation::Sync(request)) = Invocation::from_event(&event) else {
            panic!("{event} is not a sync request")
        };
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
            let request = Invocation::from_event(&event).unwrap_or_else(|e| panic!("{name}: {e}"));
            if name.starts_with("scheduled") {
                assert!(
                    is_scheduled(&event),
                    "{name} is not an EventBridge envelope"
                );
                assert_eq!(request, sync(SyncRequest::default()));
            } else {
                assert!(
                    !is_scheduled(&event),
                    "{name} would be taken for a schedule"
                );
                assert_ne!(
                    request,
                    sync(SyncRequest::default()),
                    "{name} narrows nothing"
                );
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
                matches!(Invocation::from_event(&event), Err(Error::Event(_))),
                "{event} was accepted"
            );
        }
    }

    #[test]
    fn the_command_is_named_or_sync_by_default() {
        let named = json!({"command": "sync", "rehash": true});
        let old_name = json!({"verify": true});
        let rehash = sync(SyncRequest {
            rehash: Some(true),
            ..SyncRequest::default()
        });
        assert_eq!(Invocation::from_event(&named).unwrap(), rehash);
        assert_eq!(Invocation::from_event(&old_name).unwrap(), rehash);
        let unknown = Invocation::from_event(&json!({"command": "explode"}));
        assert!(matches!(unknown, Err(Error::Event(m)) if m.contains("explode")));
        let verify = json!({"command": "verify", "read_data": "1%"});
        let Ok(Invocation::Verify(request)) = Invocation::from_event(&verify) else {
            panic!("{verify} is not a verify request")
        };
        assert_eq!(request.read_data, Some(ReadShare::BasisPoints(100)));
        let misplaced = json!({"command": "verify", "subdir": "a"});
        assert!(
            matches!(Invocation::from_event(&misplaced), Err(Error::Event(m)) if m.contains("read_data"))
        );
        let audit = json!({"command": "audit", "fix": "copy"});
        let Ok(Invocation::Audit(request)) = Invocation::from_event(&audit) else {
            panic!("{audit} is not an audit request")
        };
        assert_eq!(request.fix, crate::commands::audit::Fix::Copy);
        let bad_fix = json!({"command": "audit", "fix": "repaint"});
        assert!(
            matches!(Invocation::from_event(&bad_fix), Err(Error::Event(m)) if m.contains("confirm_job"))
        );
    }
}
