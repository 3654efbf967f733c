//! The metrics of SPEC 12.2, read with sysinfo. Each refresh is targeted (CPU times, RAM,
//! `statvfs` of the watched file systems, interface counters) so that sampling every 15 s
//! costs next to nothing; the mount list is re-read only every ten minutes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use spog_protocol::MetricSample;
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, NetworkData, Networks, RefreshKind,
    System,
};

use crate::facts::rfc3339;

/// How often the list of mounted file systems is read again.
const DISK_LIST_INTERVAL: Duration = Duration::from_secs(600);
/// The hub refuses longer label values.
const MAX_LABEL_VALUE: usize = 200;

/// File system types that hold no data of their own (sysinfo already leaves out proc, sysfs,
/// tmpfs, cgroup, squashfs, NFS and the like).
const VIRTUAL_FILE_SYSTEMS: &[&str] = &[
    "overlay",
    "ramfs",
    "nsfs",
    "tracefs",
    "debugfs",
    "securityfs",
    "bpf",
    "configfs",
    "fusectl",
    "efivarfs",
    "binfmt_misc",
    "selinuxfs",
    "fuse.lxcfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
    "fuse.snapfuse",
    "zram",
];

/// Keeps what the next sample needs from the previous one (CPU times, interface counters).
pub struct Collector {
    system: Option<System>,
    networks: Option<Networks>,
    networks_read_at: Instant,
    disks: Option<Disks>,
    /// Indices into `disks` of the real file systems, one mount per device.
    watched_disks: Vec<usize>,
    disks_listed_at: Instant,
}

impl Collector {
    /// Takes the first readings, so that the first sample has a period to measure over.
    /// Blocking: run off the async thread.
    pub fn new() -> Self {
        let system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .map_err(|e| tracing::warn!(error = %e, "CPU and memory metrics unavailable"))
        .ok();
        let networks = Networks::new_with_refreshed_list()
            .map_err(|e| tracing::warn!(error = %e, "network metrics unavailable"))
            .ok();
        let mut collector = Self {
            system,
            networks,
            networks_read_at: Instant::now(),
            disks: None,
            watched_disks: Vec::new(),
            disks_listed_at: Instant::now(),
        };
        collector.list_disks();
        collector
    }

    /// One reading of every metric, stamped `now`. Blocking: run off the async thread.
    pub fn sample(&mut self, now: SystemTime) -> Vec<MetricSample> {
        let at = rfc3339(now);
        let mut samples = Vec::with_capacity(32);
        let mut push = |metric: &str, value: f64, label: Option<(&str, &str)>| {
            if value.is_finite() {
                samples.push(MetricSample {
                    metric: metric.to_owned(),
                    value,
                    at: Some(at.clone()),
                    labels: label
                        .map(|(k, v)| BTreeMap::from([(k.to_owned(), v.to_owned())]))
                        .unwrap_or_default(),
                });
            }
        };

        if let Some(system) = &mut self.system {
            system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
            push("cpu.percent", f64::from(system.global_cpu_usage()), None);
            system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
            if let Some(percent) = percent(system.used_memory(), system.total_memory()) {
                push("memory.used_percent", percent, None);
            }
        }
        if let Ok(load) = System::load_average() {
            push("load1", load.one, None);
            push("load5", load.five, None);
            push("load15", load.fifteen, None);
        }

        if self.disks_listed_at.elapsed() >= DISK_LIST_INTERVAL {
            self.list_disks();
        }
        if let Some(disks) = &mut self.disks {
            for &index in &self.watched_disks {
                let Some(disk) = disks.get_mut(index) else {
                    continue;
                };
                disk.refresh_specifics(DiskRefreshKind::nothing().with_storage());
                let used = disk.total_space().saturating_sub(disk.available_space());
                if let (Some(value), Some(mount)) = (
                    percent(used, disk.total_space()),
                    disk.mount_point().to_str(),
                ) {
                    push("disk.used_percent", value, Some(("mount", mount)));
                }
            }
        }

        if let Some(networks) = &mut self.networks {
            networks.refresh(true);
            let seconds = self.networks_read_at.elapsed().as_secs_f64();
            self.networks_read_at = Instant::now();
            if seconds > 0.0 {
                for (name, data) in networks.iter() {
                    let Some(name) = name.to_str() else { continue };
                    if is_loopback(name, data) || name.len() > MAX_LABEL_VALUE {
                        continue;
                    }
                    let label = Some(("interface", name));
                    push(
                        "net.rx_bytes_per_second",
                        data.received() as f64 / seconds,
                        label,
                    );
                    push(
                        "net.tx_bytes_per_second",
                        data.transmitted() as f64 / seconds,
                        label,
                    );
                }
            }
        }
        samples
    }

    /// Reads the mount list (without `statvfs`) and picks the file systems to watch.
    fn list_disks(&mut self) {
        self.disks_listed_at = Instant::now();
        let disks = match &mut self.disks {
            Some(disks) => {
                disks.refresh_specifics(true, DiskRefreshKind::nothing());
                disks
            }
            None => match Disks::new() {
                Ok(mut disks) => {
                    disks.refresh_specifics(true, DiskRefreshKind::nothing());
                    self.disks.insert(disks)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "disk metrics unavailable");
                    return;
                }
            },
        };
        // One mount per device (bind mounts repeat it), the shortest path.
        let mut by_device: BTreeMap<&std::ffi::OsStr, usize> = BTreeMap::new();
        for (index, disk) in disks.iter().enumerate() {
            if !is_real_file_system(disk.name(), disk.file_system())
                || disk.mount_point().as_os_str().len() > MAX_LABEL_VALUE
            {
                continue;
            }
            let shorter = |kept: &usize| {
                disk.mount_point().as_os_str().len() < disks[*kept].mount_point().as_os_str().len()
            };
            match by_device.get(disk.name()) {
                Some(kept) if !shorter(kept) => {}
                _ => {
                    by_device.insert(disk.name(), index);
                }
            }
        }
        self.watched_disks = by_device.into_values().collect();
        self.watched_disks.sort_unstable();
    }
}

/// A block device (or a ZFS dataset) holding a data file system.
fn is_real_file_system(device: &std::ffi::OsStr, file_system: &std::ffi::OsStr) -> bool {
    let Some(file_system) = file_system.to_str() else {
        return false;
    };
    if VIRTUAL_FILE_SYSTEMS.contains(&file_system) {
        return false;
    }
    device.to_str().is_some_and(|d| d.starts_with("/dev/")) || file_system == "zfs"
}

fn is_loopback(name: &str, data: &NetworkData) -> bool {
    let addresses = data.ip_networks();
    name == "lo" || (!addresses.is_empty() && addresses.iter().all(|n| n.addr.is_loopback()))
}

fn percent(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 * 100.0 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn this_machine_reports_every_metric_with_its_labels() {
        let mut collector = Collector::new();
        std::thread::sleep(Duration::from_millis(300));
        let now = SystemTime::now();
        let samples = collector.sample(now);
        let names: Vec<&str> = samples.iter().map(|s| s.metric.as_str()).collect();
        for name in [
            "cpu.percent",
            "memory.used_percent",
            "load1",
            "load5",
            "load15",
        ] {
            assert_eq!(
                names.iter().filter(|n| **n == name).count(),
                1,
                "{name}: {names:?}"
            );
        }
        let disks: Vec<_> = samples
            .iter()
            .filter(|s| s.metric == "disk.used_percent")
            .collect();
        assert!(
            !disks.is_empty(),
            "a real file system is mounted: {names:?}"
        );
        for disk in &disks {
            let mount = &disk.labels["mount"];
            assert!(mount.starts_with('/'), "{mount}");
            assert!(
                !mount.starts_with("/proc") && !mount.starts_with("/sys"),
                "{mount}"
            );
        }
        let mut mounts: Vec<_> = disks.iter().map(|d| &d.labels["mount"]).collect();
        mounts.sort();
        mounts.dedup();
        assert_eq!(mounts.len(), disks.len(), "one sample per mount");
        for metric in ["net.rx_bytes_per_second", "net.tx_bytes_per_second"] {
            for sample in samples.iter().filter(|s| s.metric == metric) {
                assert_ne!(sample.labels["interface"], "lo");
                assert!(sample.value >= 0.0);
            }
        }
        let at = rfc3339(now);
        for sample in &samples {
            assert!(sample.value.is_finite());
            assert_eq!(sample.at.as_deref(), Some(at.as_str()));
            assert!(sample.labels.len() <= 1);
            if sample.metric.ends_with("percent") {
                assert!((0.0..=100.0).contains(&sample.value), "{sample:?}");
            }
        }
    }

    #[test]
    fn only_block_devices_and_zfs_count_as_real_file_systems() {
        let real = |device: &str, fs: &str| is_real_file_system(OsStr::new(device), OsStr::new(fs));
        assert!(real("/dev/vda1", "ext4"));
        assert!(real("/dev/mapper/root", "xfs"));
        assert!(real("tank/home", "zfs"));
        assert!(!real("overlay", "overlay"));
        assert!(!real("/dev/loop3", "overlay"));
        assert!(!real("lxcfs", "fuse.lxcfs"));
        assert!(!real("none", "ext4"));
    }
}
