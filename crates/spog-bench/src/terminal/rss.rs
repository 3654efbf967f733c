//! The server's memory while the terminals print.

use super::*;

/// The server's peak RSS, sampled every 200 ms until stopped.
pub(super) struct RssSampler {
    pub(super) peak: Arc<AtomicU64>,
    pub(super) sampling: Arc<AtomicBool>,
    pub(super) task: JoinHandle<()>,
}

impl RssSampler {
    pub(super) fn start(pid: u32) -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let sampling = Arc::new(AtomicBool::new(true));
        let task = {
            let (peak, sampling) = (peak.clone(), sampling.clone());
            tokio::spawn(async move {
                while sampling.load(Ordering::Relaxed) {
                    let rss = harness::rss_of(&format!("/proc/{pid}/status"));
                    peak.fetch_max(rss, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
        };
        Self {
            peak,
            sampling,
            task,
        }
    }

    pub(super) async fn stop(self) -> u64 {
        self.sampling.store(false, Ordering::Relaxed);
        let _ = self.task.await;
        self.peak.load(Ordering::Relaxed)
    }
}
