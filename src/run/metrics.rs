//! Run metrics in CloudWatch Embedded Metric Format: one JSON log line per
//! run, which CloudWatch turns into metrics without any API call (and so
//! without any IAM permission or extra latency).

use serde_json::{Value, json};

use crate::manifest::Summary;

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

/// The EMF document for one sync run.
pub fn emf(summary: &Summary, function_name: &str, timestamp_ms: i64) -> Value {
    let metrics = [
        ("FilesUploaded", "Count", summary.uploaded),
        ("FilesSkipped", "Count", summary.skipped),
        ("FilesReencrypted", "Count", summary.reencrypted),
        ("FilesFailed", "Count", summary.failed),
        ("BytesUploaded", "Bytes", summary.bytes_uploaded),
        ("RunDuration", "Milliseconds", summary.duration_ms),
        (
            "SourceShrunk",
            "Count",
            u64::from(summary.source_shrunk.is_some()),
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
        let summary = Summary::tally("run-1", false, &[failed], 0, 42);
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
        assert_eq!(doc["FilesFailed"], 1);
        assert_eq!(doc["RunDuration"], 42);
        assert_eq!(doc["Status"], "failed");
    }
}
