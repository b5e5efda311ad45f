//! Run metrics in CloudWatch Embedded Metric Format: one JSON log line per
//! run, which CloudWatch turns into metrics without any API call (and so
//! without any IAM permission or extra latency).

use serde_json::{Value, json};

use crate::manifest::{RunStatus, Summary};

pub const NAMESPACE: &str = "S3KmsSync";

/// A metric of an EMF document: name, unit and value.
pub type Metric<'a> = (&'a str, &'a str, u64);

/// An EMF document dimensioned by function name: `metrics` become CloudWatch
/// metrics, `properties` are logged beside them for searching.
pub fn document(
    function_name: &str,
    timestamp_ms: i64,
    metrics: &[Metric<'_>],
    properties: Value,
) -> Value {
    let declared: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": declared
            }]
        },
        "FunctionName": function_name,
    });
    for (name, _, value) in metrics {
        doc[*name] = json!(value);
    }
    if let (Some(doc), Value::Object(properties)) = (doc.as_object_mut(), properties) {
        doc.extend(properties);
    }
    doc
}

/// A run that left a whole snapshot: every file found was processed and the
/// manifest is stored. The heartbeat alarm breaches when none arrives.
fn completed(summary: &Summary) -> bool {
    !summary.dry_run
        && summary.status != RunStatus::Skipped
        && summary.complete
        && summary.manifest_s3_uri.is_some()
}

/// A run that ended `partial` without any failed file or a shrunk source
/// (which alarm on their own): the time limit, a lost lock, or a manifest
/// that was not stored.
fn incomplete(summary: &Summary) -> bool {
    summary.status == RunStatus::Partial && summary.failed == 0 && summary.source_shrunk.is_none()
}

/// The EMF document for one sync run.
pub fn emf(summary: &Summary, function_name: &str, timestamp_ms: i64) -> Value {
    let metrics = [
        ("FilesUploaded", "Count", summary.uploaded),
        ("FilesSkipped", "Count", summary.skipped),
        ("FilesReencrypted", "Count", summary.reencrypted),
        ("FilesFailed", "Count", summary.failed),
        // Files a run stopped by the time limit did not reach: how far the
        // walk still has to go round.
        ("FilesCarried", "Count", summary.carried),
        ("BytesUploaded", "Bytes", summary.bytes_uploaded),
        ("RunDuration", "Milliseconds", summary.duration_ms),
        (
            "SourceShrunk",
            "Count",
            u64::from(summary.source_shrunk.is_some()),
        ),
        ("RunsCompleted", "Count", u64::from(completed(summary))),
        ("RunsIncomplete", "Count", u64::from(incomplete(summary))),
        (
            "RunsLockHeld",
            "Count",
            u64::from(summary.status == RunStatus::Skipped),
        ),
    ];
    let properties = json!({"RunId": summary.run_id, "Status": summary.status});
    document(function_name, timestamp_ms, &metrics, properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::FileRecord;

    #[test]
    fn every_declared_metric_has_a_value() {
        let mut failed = FileRecord::new(std::path::Path::new("/x"), 3);
        failed.fail("boom".into());
        let mut carried = FileRecord::new(std::path::Path::new("/y"), 1);
        carried.status = crate::manifest::FileStatus::Carried;
        let summary = Summary::tally("run-1", false, &[failed, carried], 0, 42);
        let doc = emf(&summary, "fn", 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], NAMESPACE);
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_u64(), "{name} has no numeric value");
        }
        for dimension in directive["Dimensions"][0].as_array().unwrap() {
            assert!(doc[dimension.as_str().unwrap()].is_string());
        }
        assert_eq!(
            (&doc["FilesFailed"], &doc["FilesCarried"]),
            (&1.into(), &1.into())
        );
        assert_eq!(doc["RunDuration"], 42);
        assert_eq!(doc["Status"], "failed");
        assert_eq!(
            (
                doc["RunsCompleted"].as_u64(),
                doc["RunsIncomplete"].as_u64()
            ),
            (Some(0), Some(0)),
            "a run with a failed file and no manifest neither completed nor stopped early"
        );
    }

    #[test]
    fn run_outcomes_feed_the_heartbeat_and_the_stall_alarms() {
        let mut stored = FileRecord::new(std::path::Path::new("/x"), 3);
        stored.status = crate::manifest::FileStatus::Skipped;
        let mut done = Summary::tally("run-1", false, std::slice::from_ref(&stored), 0, 1);
        done.manifest_s3_uri = Some("s3://b/p/_manifests/m.json".into());
        let mut stopped = Summary::tally("run-2", false, &[stored], 5, 1);
        stopped.manifest_s3_uri = done.manifest_s3_uri.clone();
        let held = Summary::skipped("run-3", "lock held".into(), Default::default());
        let outcome = |s: &Summary| {
            let doc = emf(s, "fn", 0);
            let get = |name: &str| doc[name].as_u64().unwrap();
            (
                get("RunsCompleted"),
                get("RunsIncomplete"),
                get("RunsLockHeld"),
            )
        };
        assert_eq!(outcome(&done), (1, 0, 0));
        assert_eq!(stopped.status, RunStatus::Partial);
        assert_eq!(outcome(&stopped), (0, 1, 0));
        assert_eq!(outcome(&held), (0, 0, 1));
    }
}
