//! Which `SPOG_*` variables configure the hub. The prefix is shared: the agent's variables
//! (`SPOG_AGENT_*`) from the same shell, the service links Kubernetes injects into every pod of
//! a namespace with a Service named `spog` (`SPOG_PORT=tcp://…`, `SPOG_SERVICE_HOST`, …), a
//! test suite's. So an unknown variable is a warning naming the closest key, never a reason
//! not to start; an unknown key in a file stays an error (a file is written for spog alone).

/// `SPOG_*` variables that are not configuration keys and say nothing worth a warning.
const NOT_CONFIG: &[&str] = &["config", "test_database_url", "log"];
/// `SPOG_AGENT_*` variables configure a `spog-agent` run from the same shell, not the hub.
const AGENT_PREFIX: &str = "agent_";

/// The `SPOG_*` variables of an environment, sorted into configuration keys and warnings.
#[derive(Debug, Default, PartialEq)]
pub struct Variables {
    /// Lower-case names without the prefix, each a known key (possibly `key__nested`).
    pub keys: Vec<String>,
    pub warnings: Vec<String>,
}

/// Sorts `vars` (name, value) against the configuration's `known` top-level keys.
pub fn sort(vars: impl IntoIterator<Item = (String, String)>, known: &[String]) -> Variables {
    let mut sorted = Variables::default();
    for (name, _) in vars {
        let Some(rest) = name
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("SPOG_"))
            .map(|_| name[5..].to_ascii_lowercase())
        else {
            continue;
        };
        let top = rest.split("__").next().unwrap_or_default();
        if known.iter().any(|k| k == top) {
            sorted.keys.push(rest);
        } else if !NOT_CONFIG.contains(&rest.as_str())
            && !rest.starts_with(AGENT_PREFIX)
            && !is_service_link(&rest)
        {
            sorted.warnings.push(match closest(top, known) {
                Some(key) => format!(
                    "environment variable {name} is not a configuration key and is ignored \
                     (did you mean SPOG_{}?)",
                    key.to_ascii_uppercase()
                ),
                None => {
                    format!("environment variable {name} is not a configuration key and is ignored")
                }
            });
        }
    }
    sorted
}

/// Kubernetes' service-link variables for a Service named `spog`, prefix removed:
/// `port`, `port_8080_tcp`, `port_8080_tcp_addr|port|proto`, `service_host`, `service_port`,
/// `service_port_<name>`.
fn is_service_link(rest: &str) -> bool {
    if rest == "port" || rest == "service_host" || rest == "service_port" {
        return true;
    }
    if rest.starts_with("service_port_") {
        return true;
    }
    let Some(link) = rest.strip_prefix("port_") else {
        return false;
    };
    let mut parts = link.split('_');
    let number = parts
        .next()
        .is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    let protocol = parts
        .next()
        .is_some_and(|p| matches!(p, "tcp" | "udp" | "sctp"));
    let field = match parts.next() {
        None => true,
        Some(f) => matches!(f, "addr" | "port" | "proto") && parts.next().is_none(),
    };
    number && protocol && field
}

/// The known key nearest to `key`, if it is near enough to be a typo.
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["listen", "body_limit", "data_dir", "record_input"]
            .map(String::from)
            .to_vec()
    }

    fn sorted(names: &[&str]) -> Variables {
        sort(
            names.iter().map(|n| ((*n).to_owned(), "x".to_owned())),
            &known(),
        )
    }

    #[test]
    fn service_links_the_agent_and_the_tests_are_not_the_hubs() {
        let variables = sorted(&[
            "SPOG_PORT",
            "SPOG_PORT_8080_TCP",
            "SPOG_PORT_8080_TCP_ADDR",
            "SPOG_PORT_8080_TCP_PORT",
            "SPOG_PORT_8080_TCP_PROTO",
            "SPOG_SERVICE_HOST",
            "SPOG_SERVICE_PORT",
            "SPOG_SERVICE_PORT_HTTP",
            "SPOG_AGENT_STATE_DIR",
            "SPOG_TEST_DATABASE_URL",
            "SPOG_CONFIG",
            "PATH",
        ]);
        assert_eq!(variables, Variables::default());
    }

    #[test]
    fn known_keys_pass_and_the_rest_is_a_warning_naming_the_closest_key() {
        let variables = sorted(&["SPOG_LISTEN", "SPOG_BODY_LIMT", "SPOG_FOO", "spog_data_dir"]);
        assert_eq!(variables.keys, ["listen", "data_dir"]);
        assert_eq!(variables.warnings.len(), 2);
        assert!(
            variables.warnings[0].contains("SPOG_BODY_LIMT")
                && variables.warnings[0].contains("did you mean SPOG_BODY_LIMIT?"),
            "{:?}",
            variables.warnings
        );
        assert!(!variables.warnings[1].contains("did you mean"));
        // Shapes near a service link but not one are warned about.
        assert_eq!(sorted(&["SPOG_PORT_HTTP_TCP"]).warnings.len(), 1);
    }
}
