//! CEF (ArcSight Common Event Format) lines of audit entries (SPEC 3.5 "Formats").

use crate::audit::EntryFields;

/// Header fields escape `\` and `|`.
fn header(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '|' => out.push_str("\\|"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
}

/// Extension values escape `\` and `=`, and newlines as `\n`.
fn value(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '=' => out.push_str("\\="),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// The entry as one CEF line (no line end). `version` is spog's.
pub fn write_cef(entry: &EntryFields<'_>, version: &str, out: &mut Vec<u8>) {
    let mut line = String::with_capacity(512);
    line.push_str("CEF:0|SPOG|spog|");
    header(version, &mut line);
    line.push('|');
    header(entry.action, &mut line);
    line.push('|');
    header(entry.action, &mut line);
    line.push('|');
    line.push_str(if entry.outcome == "failure" { "7" } else { "3" });
    line.push('|');
    let seq = entry.seq.map(|s| s.to_string());
    let rt = (entry.occurred_at.micros() / 1000).to_string();
    let fields: [(&str, Option<&str>); 20] = [
        ("rt", Some(&rt)),
        ("externalId", Some(entry.id)),
        ("cn1Label", seq.as_ref().map(|_| "seq")),
        ("cn1", seq.as_deref()),
        ("act", Some(entry.action)),
        ("outcome", Some(entry.outcome)),
        ("suser", entry.actor_email),
        ("suid", entry.actor_id),
        ("src", entry.ip),
        ("requestClientApplication", entry.user_agent),
        ("cs1Label", Some("resourceType")),
        ("cs1", Some(entry.resource_type)),
        ("cs2Label", entry.resource_id.map(|_| "resourceId")),
        ("cs2", entry.resource_id),
        ("cs3Label", entry.resource_name.map(|_| "resourceName")),
        ("cs3", entry.resource_name),
        ("cs4Label", entry.organization_id.map(|_| "organizationId")),
        ("cs4", entry.organization_id),
        ("cs5Label", Some("accountId")),
        ("cs5", Some(entry.account_id)),
    ];
    let hash = [
        ("cs6Label", entry.hash.map(|_| "hash")),
        ("cs6", entry.hash),
    ];
    let mut first = true;
    for (key, text) in fields.into_iter().chain(hash) {
        let Some(text) = text else { continue };
        if !first {
            line.push(' ');
        }
        first = false;
        line.push_str(key);
        line.push('=');
        value(text, &mut line);
    }
    out.extend_from_slice(line.as_bytes());
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Timestamp;

    pub(crate) fn entry<'a>() -> EntryFields<'a> {
        EntryFields {
            id: "01a2",
            seq: Some(7),
            occurred_at: Timestamp::from_micros(1_764_064_800_123_456),
            account_id: "acc",
            organization_id: None,
            actor_type: "user",
            actor_id: Some("u1"),
            actor_email: Some("a@example.com"),
            actor_name: Some("Ann"),
            source: "api",
            ip: Some("10.0.0.1"),
            user_agent: None,
            request_id: Some("req-1"),
            action: "webhook.update",
            resource_type: "webhook",
            resource_id: Some("w1"),
            resource_name: Some("a|b=c\\d\nnext"),
            outcome: "failure",
            before: Some("{\"name\":\"old\"}"),
            after: None,
            metadata: None,
            credential_id: None,
            credential_name: None,
            recorded_at: None,
            prev_hash: Some("00"),
            hash: Some("ff"),
        }
    }

    #[test]
    fn header_and_extension_escape_as_cef_says() {
        let mut out = Vec::new();
        write_cef(&entry(), "1.2.3", &mut out);
        let line = String::from_utf8(out).unwrap();
        assert!(line.starts_with(
            "CEF:0|SPOG|spog|1.2.3|webhook.update|webhook.update|7|rt=1764064800123 "
        ));
        assert!(line.contains(" cn1Label=seq cn1=7 "));
        assert!(line.contains(" cs3=a|b\\=c\\\\d\\nnext "), "{line}");
        assert!(line.contains(" suser=a@example.com suid=u1 src=10.0.0.1 cs1Label=resourceType"));
        assert!(
            !line.contains("requestClientApplication"),
            "absent values are left out"
        );
        assert!(line.ends_with("cs6Label=hash cs6=ff"));
    }
}
