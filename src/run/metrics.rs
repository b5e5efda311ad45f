//! Run metrics in CloudWatch Embedded Metric Format: one JSON log line per
//! run, which CloudWatch turns into metrics without any API call (and so
//! without any IAM permission or extra latency).

use serde_json::{Value, json};

use crate::manifest::Summary;

pub const NAMESPACE: &str = "S3KmsSync";

/// The EMF document for one run, dimensioned by function name.
pub fn emf(summary: &Summary, function_name: &str, timestamp_ms: i64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["FunctionName"]],
                "Metrics": [
                    {"Name": "FilesUploaded", "Unit": "Count"},
                    {"Name": "FilesSkipped", "Unit": "Count"},
                    {"Name": "FilesFailed", "Unit": "Count"},
                    {"Name": "BytesUploaded", "Unit": "Bytes"},
                    {"Name": "RunDuration", "Unit": "Milliseconds"},
                    {"Name": "SourceShrunk", "Unit": "Count"}
                ]
            }]
        },
        "FunctionName": function_name,
        "FilesUploaded": summary.uploaded,
        "FilesSkipped": summary.skipped,
        "FilesFailed": summary.failed,
        "BytesUploaded": summary.bytes_uploaded,
        "RunDuration": summary.duration_ms,
        "SourceShrunk": u8::from(summary.source_shrunk.is_some()),
        "RunId": summary.run_id,
        "Status": summary.status,
    })
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
