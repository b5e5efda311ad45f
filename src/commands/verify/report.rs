//! What `verify` found: counts per kind of problem, and each problem named.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::options::ReadShare;
use crate::manifest::PassedOver;
use crate::manifest::chain::BrokenLink;
use crate::run::metrics;
use crate::store::UnusableKey;
use crate::trust::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyStatus {
    Ok,
    Problems,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The object, or its recorded version, is gone.
    Missing,
    /// Its size or recorded MD5 is not what the manifest says.
    Changed,
    /// It is not SSE-KMS under the configured key.
    WrongEncryption,
    /// Its bytes, read back, do not have the recorded MD5.
    ContentMismatch,
    /// A manifest of the chain is missing, unreadable or rewritten.
    ChainBroken,
    /// In an archive class or tier: GetObject refuses it until a
    /// RestoreObject has thawed it.
    Archived,
    /// A KMS key that encrypts objects of the snapshot cannot decrypt now
    /// (disabled, pending deletion): the problem names the key.
    KeyUnusable,
    /// Its bytes had to be read to vouch for it, and could not be.
    Unreadable,
    /// A trusted key is configured and the manifest has no signature.
    Unsigned,
    /// Its signature is not the trusted key's signature of its bytes.
    BadSignature,
    /// It is signed by another KMS key than the trusted one.
    ForeignKey,
    /// A record names another object than the one its path maps to under
    /// the manifest's prefix: restore refuses it.
    Misplaced,
}

/// One problem, naming the object key or the manifest it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: ProblemKind,
    pub key: String,
    pub detail: String,
}

impl Problem {
    pub fn key_unusable(key: UnusableKey) -> Self {
        Problem {
            kind: ProblemKind::KeyUnusable,
            key: key.key,
            detail: key.detail,
        }
    }

    /// The problem a manifest's signature is, where a key is trusted.
    pub fn of_signature(manifest_s3_uri: &str, verdict: &Verdict) -> Option<Self> {
        let kind = match verdict {
            Verdict::Valid { .. } | Verdict::NotChecked { .. } => return None,
            Verdict::Unsigned => ProblemKind::Unsigned,
            Verdict::BadSignature { .. } => ProblemKind::BadSignature,
            Verdict::ForeignKey { .. } => ProblemKind::ForeignKey,
        };
        Some(Problem {
            kind,
            key: manifest_s3_uri.to_owned(),
            detail: verdict.refusal().unwrap_or_default(),
        })
    }

    pub fn chain_broken(link: BrokenLink) -> Self {
        Problem {
            kind: ProblemKind::ChainBroken,
            key: link.key,
            detail: link.detail,
        }
    }
}

/// What is worth knowing but restores no worse, naming the manifest it
/// concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub key: String,
    pub detail: String,
}

impl Warning {
    /// A manifest's signature where no key is trusted: it proves nothing then.
    pub fn unchecked(manifest_s3_uri: &str, verdict: &Verdict) -> Option<Self> {
        let why = match verdict {
            Verdict::Unsigned => "it is unsigned".to_owned(),
            Verdict::NotChecked { key_arn } => format!("its signature by {key_arn} is not checked"),
            _ => return None,
        };
        Some(Warning {
            key: manifest_s3_uri.to_owned(),
            detail: format!(
                "{why}: anyone who can put an object into the prefix could have written it; set SYNC_TRUSTED_PUBLIC_KEY (--trusted-public-key) or SYNC_SIGNING_KEY_ID to check signatures"
            ),
        })
    }

    /// A manifest of the chain that is gone: removed on purpose, or not.
    pub fn gap(link: BrokenLink) -> Self {
        Warning {
            key: link.key,
            detail: link.detail,
        }
    }
}

/// Which objects `--read-data` read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadData {
    pub share: ReadShare,
    /// Objects whose slot (the first 8 bytes of the MD5 of the key, modulo
    /// 10,000) is in `[first_slot, first_slot + slots)`, wrapping at 10,000.
    pub first_slot: u32,
    pub slots: u32,
    pub seed: u64,
    pub objects_read: u64,
    pub bytes_read: u64,
}

/// The JSON `verify` prints (and returns under Lambda).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub run_id: String,
    pub status: VerifyStatus,
    pub manifest_s3_uri: String,
    /// Newer manifests that "latest" did not take, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passed_over: Vec<PassedOver>,
    /// What the manifest's signature proved.
    pub signature: Verdict,
    /// Files of the manifest checked.
    pub checked: u64,
    pub missing: u64,
    pub changed: u64,
    pub wrong_encryption: u64,
    pub content_mismatch: u64,
    pub chain_broken: u64,
    pub archived: u64,
    pub key_unusable: u64,
    pub unreadable: u64,
    pub unsigned: u64,
    pub bad_signature: u64,
    pub foreign_key: u64,
    pub misplaced: u64,
    /// Manifests of the chain checked, the verified one included.
    pub chain_checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_data: Option<ReadData>,
    /// S3 requests sent, by operation.
    pub requests: BTreeMap<String, u64>,
    pub duration_ms: u64,
    pub problems: Vec<Problem>,
    /// A gap in the chain (an older manifest removed), an unsigned
    /// manifest where no key is trusted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

impl VerifyReport {
    pub fn new(run_id: &str, manifest_s3_uri: String) -> Self {
        VerifyReport {
            run_id: run_id.to_owned(),
            status: VerifyStatus::Ok,
            manifest_s3_uri,
            passed_over: Vec::new(),
            signature: Verdict::Unsigned,
            checked: 0,
            missing: 0,
            changed: 0,
            wrong_encryption: 0,
            content_mismatch: 0,
            chain_broken: 0,
            archived: 0,
            key_unusable: 0,
            unreadable: 0,
            unsigned: 0,
            bad_signature: 0,
            foreign_key: 0,
            misplaced: 0,
            chain_checked: 0,
            read_data: None,
            requests: BTreeMap::new(),
            duration_ms: 0,
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub fn add(&mut self, problem: Problem) {
        let count = match problem.kind {
            ProblemKind::Missing => &mut self.missing,
            ProblemKind::Changed => &mut self.changed,
            ProblemKind::WrongEncryption => &mut self.wrong_encryption,
            ProblemKind::ContentMismatch => &mut self.content_mismatch,
            ProblemKind::ChainBroken => &mut self.chain_broken,
            ProblemKind::Archived => &mut self.archived,
            ProblemKind::KeyUnusable => &mut self.key_unusable,
            ProblemKind::Unreadable => &mut self.unreadable,
            ProblemKind::Unsigned => &mut self.unsigned,
            ProblemKind::BadSignature => &mut self.bad_signature,
            ProblemKind::ForeignKey => &mut self.foreign_key,
            ProblemKind::Misplaced => &mut self.misplaced,
        };
        *count += 1;
        self.status = VerifyStatus::Problems;
        self.problems.push(problem);
    }

    pub fn add_all(&mut self, problems: Vec<Problem>) {
        problems.into_iter().for_each(|p| self.add(p));
    }

    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64
    }

    /// The EMF document of this run: the problems found, and the files checked.
    pub fn emf(&self, function_name: &str, timestamp_ms: i64) -> serde_json::Value {
        let metrics = [
            ("VerifyProblems", "Count", self.problem_count()),
            ("VerifiedFiles", "Count", self.checked),
        ];
        let properties = serde_json::json!({"RunId": self.run_id, "Status": self.status});
        metrics::document(function_name, timestamp_ms, &metrics, properties)
    }
}
