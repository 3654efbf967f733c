//! `spog audit verify`: checks an export offline with the same rules as the server, so an
//! auditor needs nothing but the file, a checkpoint and the public key.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value;
use spog_core::Timestamp;
use spog_core::audit::{ChainVerifier, EntryFields, Snapshot, checkpoint};

#[derive(Deserialize)]
struct Checkpoint {
    account_id: String,
    seq: i64,
    head_hash: String,
    signed_at: Timestamp,
    signature: String,
}

fn read_public_key(path: &Path) -> anyhow::Result<ed25519_dalek::VerifyingKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let key_text = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => json["public_key"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_default(),
        Err(_) => text.trim().to_owned(),
    };
    checkpoint::parse_public_key(&key_text)
        .context("the public key must be 32 bytes, hex or base64")
}

/// An exported entry read as it stands: its enumerations as text, so that one altered into
/// a value no entry can hold is reported as a broken link rather than refused.
struct Exported<'a> {
    entry: &'a Value,
    occurred_at: Timestamp,
    /// Absent in entries recorded before the service kept it (and then not hashed).
    recorded_at: Option<Timestamp>,
    /// `before`, `after` and `metadata` in canonical form.
    snapshots: [Option<Snapshot>; 3],
}

impl<'a> Exported<'a> {
    fn read(entry: &'a Value) -> anyhow::Result<Self> {
        let occurred_at = entry["occurred_at"]
            .as_str()
            .and_then(Timestamp::parse)
            .context("occurred_at is not a time")?;
        let recorded_at = match &entry["recorded_at"] {
            Value::Null => None,
            value => Some(
                value
                    .as_str()
                    .and_then(Timestamp::parse)
                    .context("recorded_at is not a time")?,
            ),
        };
        let snapshot = |key: &str| Option::<Snapshot>::deserialize(&entry[key]);
        let snapshots = [
            snapshot("before")?,
            snapshot("after")?,
            snapshot("metadata")?,
        ];
        for key in [
            "id",
            "account_id",
            "actor_type",
            "source",
            "action",
            "resource_type",
            "outcome",
        ] {
            entry[key]
                .as_str()
                .with_context(|| format!("{key} is missing"))?;
        }
        Ok(Self {
            entry,
            occurred_at,
            recorded_at,
            snapshots,
        })
    }

    fn fields(&self) -> EntryFields<'_> {
        let text = |key: &str| self.entry[key].as_str();
        let snapshot = |i: usize| self.snapshots[i].as_ref().map(Snapshot::as_str);
        EntryFields {
            id: text("id").unwrap_or_default(),
            seq: self.entry["seq"].as_i64(),
            occurred_at: self.occurred_at,
            account_id: text("account_id").unwrap_or_default(),
            organization_id: text("organization_id"),
            actor_type: text("actor_type").unwrap_or_default(),
            actor_id: text("actor_id"),
            actor_email: text("actor_email"),
            actor_name: text("actor_name"),
            source: text("source").unwrap_or_default(),
            ip: text("ip"),
            user_agent: text("user_agent"),
            request_id: text("request_id"),
            action: text("action").unwrap_or_default(),
            resource_type: text("resource_type").unwrap_or_default(),
            resource_id: text("resource_id"),
            resource_name: text("resource_name"),
            outcome: text("outcome").unwrap_or_default(),
            before: snapshot(0),
            after: snapshot(1),
            metadata: snapshot(2),
            credential_id: text("credential_id"),
            credential_name: text("credential_name"),
            recorded_at: self.recorded_at,
            prev_hash: text("prev_hash"),
            hash: text("hash"),
        }
    }
}

pub fn run(
    export: &Path,
    checkpoint_file: Option<&Path>,
    public_key: Option<&Path>,
) -> anyhow::Result<()> {
    let mut verifier = ChainVerifier::new();
    let mut expected_account = None;
    if let Some(path) = checkpoint_file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let signed: Checkpoint =
            serde_json::from_str(&text).context("the checkpoint is not a checkpoint's JSON")?;
        let statement = checkpoint::statement(
            &signed.account_id,
            signed.seq,
            &signed.head_hash,
            signed.signed_at,
        );
        match public_key {
            Some(key_path) => {
                let key = read_public_key(key_path)?;
                if !checkpoint::verify(&key, &statement, &signed.signature) {
                    bail!(
                        "the checkpoint's signature does not verify with this public key: the checkpoint is forged or altered"
                    );
                }
                println!(
                    "checkpoint: signature valid (seq {}, signed {})",
                    signed.seq, signed.signed_at
                );
            }
            None => println!(
                "checkpoint: WARNING signature not checked (no --public-key); it only anchors the chain's end"
            ),
        }
        verifier.anchor(signed.seq, &signed.head_hash);
        expected_account = Some(signed.account_id);
    } else if public_key.is_some() {
        bail!("--public-key verifies a checkpoint; give --checkpoint too");
    }
    let file = File::open(export).with_context(|| format!("opening {}", export.display()))?;
    for (number, line) in BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("reading line {}", number + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry: Value = serde_json::from_str(&line)
            .with_context(|| format!("line {} is not JSON", number + 1))?;
        let exported = Exported::read(&entry)
            .with_context(|| format!("line {} is not an audit entry", number + 1))?;
        let fields = exported.fields();
        match &expected_account {
            Some(account) if account != fields.account_id => {
                bail!(
                    "line {}: the entry belongs to account {}, not {account}",
                    number + 1,
                    fields.account_id
                )
            }
            None => expected_account = Some(fields.account_id.to_owned()),
            _ => {}
        }
        verifier.push_fields(&fields);
    }
    let report = verifier.finish();
    println!("entries checked: {}", report.entries_checked);
    println!("head: seq {} hash {}", report.head_seq, report.head_hash);
    for link in &report.broken_links {
        let reason = serde_json::to_value(link.reason).unwrap_or_default();
        println!(
            "broken: seq {} id {} {}: expected {} found {}",
            link.seq,
            if link.id.is_empty() { "-" } else { &link.id },
            reason.as_str().unwrap_or_default(),
            link.expected,
            link.found
        );
    }
    if report.broken_links_omitted > 0 {
        println!("… and {} more broken links", report.broken_links_omitted);
    }
    if report.valid {
        println!("valid: the chain is intact");
        Ok(())
    } else {
        bail!("the chain is broken")
    }
}
