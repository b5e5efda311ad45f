//! The replication sheet: one row per source bucket and destination, in the
//! column names of AWS's "configure Amazon S3 bucket replication at scale"
//! spreadsheet, plus this tool's optional columns. `.xlsx` (first worksheet)
//! or `.csv`; a row with a bad value is reported by its row number (the
//! header is row 1) and the other rows go on.

use std::collections::BTreeMap;
use std::path::Path;

use calamine::{Data, Reader, open_workbook_auto};
use serde::Serialize;

use crate::error::{Error, Result};

const SOURCE: &str = "Source Bucket Name";
const REGION: &str = "Region";
const STORAGE_CLASS: &str = "Target Storage Class";
const PREFIX: &str = "Prefix Filter";
const DELETE_MARKERS: &str = "DeleteMarkerReplication";
const EXISTING: &str = "Existing Object Replication";
const TARGET: &str = "Target Bucket Name";
const REPLICA_KEY: &str = "Replica KMS Key ARN";
const TARGET_ACCOUNT: &str = "Target Account";
const TAGS: &str = "Tags";
const REQUIRED: [&str; 6] = [
    SOURCE,
    REGION,
    STORAGE_CLASS,
    PREFIX,
    DELETE_MARKERS,
    EXISTING,
];
const STORAGE_CLASSES: [&str; 7] = [
    "STANDARD",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER_IR",
    "GLACIER",
    "DEEP_ARCHIVE",
];

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The row's number in the sheet (the header is row 1).
    pub number: usize,
    pub source: String,
    /// The destination's region.
    pub region: String,
    pub storage_class: Option<String>,
    pub prefix: String,
    pub delete_markers: bool,
    /// Existing objects are replicated too, by S3 Batch Replication.
    pub existing_objects: bool,
    pub target: String,
    /// `None` when the sheet has no such column or the cell is empty: fine
    /// for a source that is not SSE-KMS, refused for one that is.
    pub replica_kms_key_arn: Option<String>,
    pub target_account: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// A row that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: usize,
    pub source: String,
    pub message: String,
}

/// Reads the sheet at `path`: the valid rows and the errors of the others.
pub fn read(path: &Path) -> Result<(Vec<Row>, Vec<RowError>)> {
    let table = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) if ext.eq_ignore_ascii_case("csv") => read_csv(path)?,
        Some(ext) if ext.eq_ignore_ascii_case("xlsx") => read_xlsx(path)?,
        _ => {
            return Err(Error::Config(format!(
                "{}: the sheet must be .xlsx or .csv",
                path.display()
            )));
        }
    };
    parse(&table, &path.display().to_string())
}

fn read_csv(path: &Path) -> Result<Vec<Vec<String>>> {
    let unreadable = |err: csv::Error| Error::Config(format!("{}: {err}", path.display()));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(unreadable)?;
    reader
        .records()
        .map(|record| {
            record
                .map(|r| r.iter().map(str::to_owned).collect())
                .map_err(unreadable)
        })
        .collect()
}

fn read_xlsx(path: &Path) -> Result<Vec<Vec<String>>> {
    let unreadable =
        |err: &dyn std::fmt::Display| Error::Config(format!("{}: {err}", path.display()));
    // A file named .xlsx that is not one (a CSV renamed, an old .xls, a
    // download that failed) gets a sentence, not the zip reader's words.
    let mut workbook = open_workbook_auto(path).map_err(|err| {
        Error::Config(format!(
            "{} is not an Excel workbook that can be read ({err}): save the sheet as .xlsx from a spreadsheet program, or export it as .csv",
            path.display()
        ))
    })?;
    let range = workbook
        .worksheet_range_at(0)
        .ok_or_else(|| unreadable(&"the workbook has no worksheet"))?
        .map_err(|e| unreadable(&e))?;
    Ok(range
        .rows()
        .map(|row| row.iter().map(cell_text).collect())
        .collect())
}

fn cell_text(cell: &Data) -> String {
    match cell {
        Data::Empty => String::new(),
        // Account ids typed as numbers come back as floats.
        Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
        other => other.to_string(),
    }
}

/// The rows of a table whose first row names the columns.
pub fn parse(table: &[Vec<String>], name: &str) -> Result<(Vec<Row>, Vec<RowError>)> {
    let header = table
        .first()
        .ok_or_else(|| Error::Config(format!("{name}: the sheet is empty")))?;
    let columns: BTreeMap<String, usize> = header
        .iter()
        .enumerate()
        .map(|(i, h)| (h.trim().to_ascii_lowercase(), i))
        .collect();
    if let Some(missing) = REQUIRED
        .iter()
        .find(|c| !columns.contains_key(&c.to_ascii_lowercase()))
    {
        return Err(Error::Config(format!(
            "{name}: no {missing:?} column (the sheet needs {REQUIRED:?})"
        )));
    }
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for (index, cells) in table.iter().enumerate().skip(1) {
        let cell = |column: &str| {
            columns
                .get(&column.to_ascii_lowercase())
                .and_then(|&i| cells.get(i))
                .map(|v| v.trim())
                .unwrap_or_default()
        };
        if cells.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        match row(index + 1, &cell) {
            Ok(row) => rows.push(row),
            Err(message) => errors.push(RowError {
                row: index + 1,
                source: cell(SOURCE).to_owned(),
                message,
            }),
        }
    }
    Ok((rows, errors))
}

fn row<'a>(number: usize, cell: &impl Fn(&str) -> &'a str) -> Result<Row, String> {
    let source = bucket_name(SOURCE, cell(SOURCE))?;
    let region = cell(REGION);
    if !is_region(region) {
        return Err(format!(
            "{REGION} {region:?} is not an AWS region (e.g. eu-west-1)"
        ));
    }
    let storage_class = match cell(STORAGE_CLASS).to_ascii_uppercase() {
        class if class.is_empty() => None,
        class if STORAGE_CLASSES.contains(&class.as_str()) => Some(class),
        class => {
            return Err(format!(
                "{STORAGE_CLASS} {class:?} is not one of {STORAGE_CLASSES:?}"
            ));
        }
    };
    let target = match cell(TARGET) {
        "" => bucket_name(TARGET, &format!("{source}-target"))?,
        name => bucket_name(TARGET, name)?,
    };
    let replica_kms_key_arn = match cell(REPLICA_KEY) {
        "" => None,
        key => match key_region(key) {
            Some(key_region) if key_region == region => Some(key.to_owned()),
            Some(key_region) => {
                return Err(format!(
                    "{REPLICA_KEY} is in {key_region}, the replica in {region}: a KMS key serves its own region only"
                ));
            }
            None => {
                return Err(format!(
                    "{REPLICA_KEY} {key:?} is not a KMS key ARN: SSE-KMS objects replicate only when the rule names the replica's key"
                ));
            }
        },
    };
    let target_account = match cell(TARGET_ACCOUNT) {
        "" => None,
        id if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) => Some(id.to_owned()),
        id => {
            return Err(format!(
                "{TARGET_ACCOUNT} {id:?} is not a 12-digit account id"
            ));
        }
    };
    Ok(Row {
        number,
        source,
        region: region.to_owned(),
        storage_class,
        prefix: cell(PREFIX).to_owned(),
        delete_markers: switch(DELETE_MARKERS, cell(DELETE_MARKERS))?,
        existing_objects: switch(EXISTING, cell(EXISTING))?,
        target,
        replica_kms_key_arn,
        target_account,
        tags: tags(cell(TAGS))?,
    })
}

fn bucket_name(column: &str, name: &str) -> Result<String, String> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "{column} {name:?} is not a valid bucket name (3-63 lowercase letters, digits, '.' and '-')"
        ))
    }
}

fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// The region of a KMS key ARN (`arn:aws:kms:<region>:<account>:key/<id>`).
fn key_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "kms", region, account, resource]
            if partition.starts_with("aws")
                && is_region(region)
                && account.len() == 12
                && resource.starts_with("key/") =>
        {
            Some(region)
        }
        _ => None,
    }
}

fn switch(column: &str, value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "enabled" | "true" | "yes" => Ok(true),
        "disabled" | "false" | "no" | "" => Ok(false),
        _ => Err(format!(
            "{column} {value:?} is neither Enabled nor Disabled"
        )),
    }
}

/// `key=value` pairs separated by `;`.
fn tags(text: &str) -> Result<BTreeMap<String, String>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!("{TAGS} {pair:?} is not key=value")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn table(rows: &[&[&str]]) -> Vec<Vec<String>> {
        rows.iter()
            .map(|r| r.iter().map(|c| (*c).to_owned()).collect())
            .collect()
    }

    const HEADER: &[&str] = &[
        "Source Bucket Name",
        "Region",
        "Target Storage Class",
        "Prefix Filter",
        "DeleteMarkerReplication",
        "Existing Object Replication",
        "Replica KMS Key ARN",
        "Tags",
    ];

    #[test]
    fn a_bad_row_is_reported_by_number_and_the_others_go_on() {
        let sheet = table(&[
            HEADER,
            &[
                "logs",
                "eu-west-1",
                "STANDARD_IA",
                "app/",
                "Enabled",
                "Disabled",
                KEY,
                "team=ops; cost=7",
            ],
            &["Bad_Bucket", "eu-west-1", "", "", "", "", KEY, ""],
            &["data", "eu-west-1", "", "", "", "Enabled", KEY, ""],
            &["other", "eu-central-1", "", "", "", "", KEY, ""],
        ]);
        let (rows, errors) = parse(&sheet, "sheet").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].number, 2);
        assert_eq!(rows[0].target, "logs-target");
        assert_eq!(rows[0].storage_class.as_deref(), Some("STANDARD_IA"));
        assert!(rows[0].delete_markers && !rows[0].existing_objects);
        assert_eq!(rows[0].tags.get("cost").map(String::as_str), Some("7"));
        assert!(rows[1].existing_objects);
        let numbered: Vec<usize> = errors.iter().map(|e| e.row).collect();
        assert_eq!(numbered, [3, 5]);
        assert!(
            errors[0].message.contains("not a valid bucket name"),
            "{errors:?}"
        );
        assert!(errors[1].message.contains("eu-west-1"), "{errors:?}");
    }

    #[test]
    fn a_missing_column_names_it_and_stops_before_any_row() {
        let sheet = table(&[&["Source Bucket Name", "Region"], &["logs", "eu-west-1"]]);
        let err = parse(&sheet, "s.csv").unwrap_err().to_string();
        assert!(err.contains("Target Storage Class"), "{err}");
    }

    /// The six columns of AWS's "replication at scale" post, as published:
    /// no replica key. Whether a row may go without one depends on the
    /// source's encryption, which `apply` reads.
    #[test]
    fn a_sheet_with_the_six_published_columns_is_read() {
        let sheet = table(&[
            &REQUIRED,
            &["logs", "eu-west-1", "STANDARD", "", "Disabled", "Enabled"],
        ]);
        let (rows, errors) = parse(&sheet, "sheet").unwrap();
        assert_eq!(errors, []);
        assert_eq!(rows[0].replica_kms_key_arn, None);
        assert!(rows[0].existing_objects);
        let sheet = table(&[
            HEADER,
            &["logs", "eu-west-1", "", "", "", "", "alias/x", ""],
        ]);
        let (_, errors) = parse(&sheet, "sheet").unwrap();
        assert!(
            errors[0].message.contains("not a KMS key ARN"),
            "{errors:?}"
        );
    }
}
