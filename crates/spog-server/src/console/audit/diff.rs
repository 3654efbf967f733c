//! The before/after comparison of an audit entry: both snapshots walked together, one row per
//! leaf value, named by its path (`roles`, `config.url`, `steps[1].name`), so nested objects
//! read as a flat list of what changed.

use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
    Unchanged,
}

impl Change {
    /// The row's CSS class and the word a screen reader hears.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct DiffRow {
    pub path: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub change: Change,
}

/// Counts of a diff's rows by kind, for its heading.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DiffSummary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub unchanged: usize,
}

pub fn summary(rows: &[DiffRow]) -> DiffSummary {
    let mut summary = DiffSummary::default();
    for row in rows {
        match row.change {
            Change::Added => summary.added += 1,
            Change::Removed => summary.removed += 1,
            Change::Changed => summary.changed += 1,
            Change::Unchanged => summary.unchanged += 1,
        }
    }
    summary
}

/// Rows comparing `before` with `after`; a missing snapshot (a creation or a deletion) makes
/// every value of the other one added or removed.
pub fn diff(before: Option<&Value>, after: Option<&Value>) -> Vec<DiffRow> {
    let mut rows = Vec::new();
    walk(String::new(), before, after, &mut rows);
    rows
}

/// `(path, value)` of every leaf of `value`, for showing metadata the same way.
pub fn flatten(value: &Value) -> Vec<(String, String)> {
    diff(None, Some(value))
        .into_iter()
        .map(|row| (row.path, row.after.unwrap_or_default()))
        .collect()
}

/// Arrays of plain values (roles, permissions, event types) read best whole, as one value;
/// arrays holding objects or arrays are walked element by element.
fn is_nested_array(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Array(items)) if items.iter().any(|i| i.is_object() || i.is_array()))
}

fn child(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_owned(),
        (false, true) => format!("{path}.{key}"),
        // Keys with dots or spaces are quoted so the path stays unambiguous.
        (_, false) => format!("{path}[{}]", Value::from(key)),
    }
}

fn walk(path: String, before: Option<&Value>, after: Option<&Value>, rows: &mut Vec<DiffRow>) {
    match (before, after) {
        (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None)
            if before.is_some_and(|b| b.as_object().is_some_and(|o| !o.is_empty()))
                || after.is_some_and(|a| a.as_object().is_some_and(|o| !o.is_empty())) =>
        {
            let empty = serde_json::Map::new();
            let b = before.and_then(Value::as_object);
            let a = after.and_then(Value::as_object);
            let mut keys: Vec<&String> = b.unwrap_or(&empty).keys().collect();
            keys.extend(a.unwrap_or(&empty).keys());
            keys.sort();
            keys.dedup();
            for key in keys {
                walk(
                    child(&path, key),
                    b.and_then(|o| o.get(key)),
                    a.and_then(|o| o.get(key)),
                    rows,
                );
            }
        }
        (Some(Value::Array(_)) | None, Some(Value::Array(_)) | None)
            if is_nested_array(before) || is_nested_array(after) =>
        {
            let b = before.and_then(Value::as_array);
            let a = after.and_then(Value::as_array);
            let len = b.map_or(0, Vec::len).max(a.map_or(0, Vec::len));
            for index in 0..len {
                walk(
                    format!("{path}[{index}]"),
                    b.and_then(|v| v.get(index)),
                    a.and_then(|v| v.get(index)),
                    rows,
                );
            }
        }
        (None, None) => {}
        _ => {
            let change = match (before, after) {
                (None, _) => Change::Added,
                (_, None) => Change::Removed,
                (Some(b), Some(a)) if b == a => Change::Unchanged,
                _ => Change::Changed,
            };
            rows.push(DiffRow {
                path: if path.is_empty() {
                    "(value)".to_owned()
                } else {
                    path
                },
                before: before.map(Value::to_string),
                after: after.map(Value::to_string),
                change,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn changes(rows: &[DiffRow]) -> Vec<(&str, Change)> {
        rows.iter().map(|r| (r.path.as_str(), r.change)).collect()
    }

    #[test]
    fn added_removed_and_changed_keys_are_told_apart() {
        let before = json!({"name": "web", "roles": ["viewer"], "old": 1, "same": true});
        let after =
            json!({"name": "web-1", "roles": ["viewer", "operator"], "new": "x", "same": true});
        let rows = diff(Some(&before), Some(&after));
        assert_eq!(
            changes(&rows),
            [
                ("name", Change::Changed),
                ("new", Change::Added),
                ("old", Change::Removed),
                ("roles", Change::Changed),
                ("same", Change::Unchanged),
            ]
        );
        assert_eq!(rows[0].before.as_deref(), Some("\"web\""));
        assert_eq!(rows[0].after.as_deref(), Some("\"web-1\""));
        assert_eq!(rows[3].after.as_deref(), Some("[\"viewer\",\"operator\"]"));
        assert_eq!(
            summary(&rows),
            DiffSummary {
                added: 1,
                removed: 1,
                changed: 2,
                unchanged: 1
            }
        );
    }

    #[test]
    fn nested_objects_read_as_paths() {
        let before = json!({"config": {"url": "https://a", "headers": {"x-team": "ops"}}, "steps": [{"n": 1}]});
        let after =
            json!({"config": {"url": "https://b", "headers": {}}, "steps": [{"n": 1}, {"n": 2}]});
        let rows = diff(Some(&before), Some(&after));
        assert_eq!(
            changes(&rows),
            [
                ("config.headers.x-team", Change::Removed),
                ("config.url", Change::Changed),
                ("steps[0].n", Change::Unchanged),
                ("steps[1].n", Change::Added),
            ]
        );
        assert_eq!(rows[0].before.as_deref(), Some("\"ops\""));
        assert_eq!(rows[0].after, None);
        // An object emptied on both sides is one unchanged value.
        let same = diff(Some(&json!({"h": {}})), Some(&json!({"h": {}})));
        assert_eq!(changes(&same), [("h", Change::Unchanged)]);
    }

    #[test]
    fn a_creation_adds_everything_and_a_deletion_removes_it() {
        let user = json!({"email": "a@example.com", "profile": {"team": "ops"}});
        assert_eq!(
            changes(&diff(None, Some(&user))),
            [("email", Change::Added), ("profile.team", Change::Added)]
        );
        assert_eq!(
            changes(&diff(Some(&user), None)),
            [
                ("email", Change::Removed),
                ("profile.team", Change::Removed)
            ]
        );
        assert!(diff(None, None).is_empty());
    }

    #[test]
    fn odd_keys_and_changed_shapes_stay_readable() {
        let before = json!({"a.b": 1, "x": {"y": 1}, "": 2});
        let after = json!({"a.b": 1, "x": "flat"});
        let rows = diff(Some(&before), Some(&after));
        assert_eq!(
            changes(&rows),
            [
                ("[\"\"]", Change::Removed),
                ("[\"a.b\"]", Change::Unchanged),
                ("x", Change::Changed),
            ]
        );
        assert_eq!(rows[2].before.as_deref(), Some("{\"y\":1}"));
        assert_eq!(
            flatten(&json!("just text")),
            [("(value)".to_owned(), "\"just text\"".to_owned())]
        );
    }
}
