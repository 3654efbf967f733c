//! What the host is (SPEC 12.2), read in `hello`, at enrollment and every ten minutes.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spog_protocol::Facts;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, Networks, RefreshKind, System};

use crate::enrollment::read_bounded;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// How often the agent looks whether the facts changed.
pub const FACTS_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// Reads the facts; blocking (files under /proc, /sys and /etc), so run off the async thread.
pub fn collect() -> Facts {
    let system = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    )
    .ok();
    Facts {
        os: std::env::consts::OS.to_owned(),
        os_name: os_pretty_name(),
        kernel: System::kernel_version().unwrap_or_default(),
        arch: System::cpu_arch(),
        hostname: System::host_name().unwrap_or_default(),
        ips: Networks::new_with_refreshed_list()
            .map(|networks| host_addresses(&networks))
            .unwrap_or_default(),
        cpu_count: system
            .as_ref()
            .map_or(0, |s| u32::try_from(s.cpus().len()).unwrap_or(u32::MAX)),
        memory_bytes: system.as_ref().map_or(0, System::total_memory),
        boot_time: System::boot_time()
            .ok()
            .filter(|seconds| *seconds > 0)
            .map(|seconds| rfc3339(UNIX_EPOCH + Duration::from_secs(seconds))),
        agent_version: AGENT_VERSION.to_owned(),
    }
}

/// The addresses others may reach the host at: not loopback, not link-local; sorted.
pub fn host_addresses(networks: &Networks) -> Vec<String> {
    let mut ips: Vec<IpAddr> = networks
        .values()
        .flat_map(|data| data.ip_networks().iter().map(|network| network.addr))
        .filter(|ip| !ip.is_loopback() && !is_link_local(ip) && !ip.is_unspecified())
        .collect();
    ips.sort();
    ips.dedup();
    ips.into_iter().map(|ip| ip.to_string()).collect()
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// `PRETTY_NAME` of os-release (`/etc/os-release`, else `/usr/lib/os-release`).
fn os_pretty_name() -> Option<String> {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| read_bounded(Path::new(path), 64 * 1024).ok())
        .and_then(|text| pretty_name(&text))
}

fn pretty_name(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.trim().strip_prefix("PRETTY_NAME=")?;
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        let value = value.replace("\\\"", "\"").replace("\\\\", "\\");
        (!value.is_empty()).then_some(value)
    })
}

/// RFC 3339 UTC with microseconds, as the API writes times.
pub fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_micros(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_facts_of_this_machine_are_complete() {
        let facts = collect();
        assert_eq!(facts.os, "linux");
        assert!(!facts.kernel.is_empty());
        assert!(!facts.arch.is_empty());
        assert!(!facts.hostname.is_empty());
        assert!(facts.cpu_count >= 1);
        assert!(facts.memory_bytes > 0);
        assert_eq!(facts.agent_version, AGENT_VERSION);
        let boot_time = facts.boot_time.expect("boot time");
        assert!(
            boot_time.ends_with('Z') && boot_time.len() == 27,
            "{boot_time}"
        );
        for ip in &facts.ips {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!ip.is_loopback(), "{ip}");
        }
    }

    #[test]
    fn pretty_name_reads_quoted_and_bare_values() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n";
        assert_eq!(
            pretty_name(text).as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
        assert_eq!(pretty_name("PRETTY_NAME=Alpine").as_deref(), Some("Alpine"));
        assert_eq!(pretty_name("NAME=x\n"), None);
    }

    #[test]
    fn times_are_written_with_microseconds() {
        let time = UNIX_EPOCH + Duration::from_micros(1_764_064_800_123_456);
        assert_eq!(rfc3339(time), "2025-11-25T10:00:00.123456Z");
    }
}
