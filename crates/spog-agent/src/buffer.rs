//! Metric batches waiting to be sent. While the agent is disconnected they pile up to a limit
//! of samples; past it the oldest batches are dropped and their samples counted, so memory
//! stays the same however long the hub is away.

use std::collections::VecDeque;

use serde_json::value::RawValue;

/// One sampling's samples, kept as their JSON text (a third of the memory of the typed form).
#[derive(Debug)]
pub struct Batch {
    pub samples: usize,
    pub json: Box<RawValue>,
}

#[derive(Debug)]
pub struct SampleBuffer {
    batches: VecDeque<Batch>,
    samples: usize,
    max_samples: usize,
    /// Dropped since the hub was last told.
    unreported_drops: u64,
    dropped_total: u64,
}

impl SampleBuffer {
    pub fn new(max_samples: usize) -> Self {
        Self {
            batches: VecDeque::new(),
            samples: 0,
            max_samples,
            unreported_drops: 0,
            dropped_total: 0,
        }
    }

    /// Adds the newest batch, dropping the oldest ones it does not fit beside; returns how many
    /// samples that dropped.
    pub fn push(&mut self, batch: Batch) -> u64 {
        let mut dropped = 0;
        while self.samples + batch.samples > self.max_samples {
            let Some(oldest) = self.batches.pop_front() else {
                break;
            };
            self.samples -= oldest.samples;
            dropped += oldest.samples as u64;
        }
        if batch.samples > self.max_samples {
            // Cannot happen with the configured bounds (100 samples or more); drop it rather
            // than hold more than the limit.
            dropped += batch.samples as u64;
        } else {
            self.samples += batch.samples;
            self.batches.push_back(batch);
        }
        self.unreported_drops += dropped;
        self.dropped_total += dropped;
        dropped
    }

    /// The oldest batch, to send.
    pub fn pop(&mut self) -> Option<Batch> {
        let batch = self.batches.pop_front()?;
        self.samples -= batch.samples;
        Some(batch)
    }

    /// Puts back a batch that could not be sent, as the oldest; dropped instead when newer
    /// batches took its room meanwhile.
    pub fn restore(&mut self, batch: Batch) {
        if self.samples + batch.samples > self.max_samples {
            self.unreported_drops += batch.samples as u64;
            self.dropped_total += batch.samples as u64;
            return;
        }
        self.samples += batch.samples;
        self.batches.push_front(batch);
    }

    /// Samples dropped since the last call, to tell the hub.
    pub fn take_unreported_drops(&mut self) -> u64 {
        std::mem::take(&mut self.unreported_drops)
    }

    /// Gives back a count taken but not delivered.
    pub fn return_unreported_drops(&mut self, dropped: u64) {
        self.unreported_drops += dropped;
    }

    pub fn buffered_samples(&self) -> usize {
        self.samples
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(tag: u32, samples: usize) -> Batch {
        Batch {
            samples,
            json: RawValue::from_string(format!("[{tag}]")).unwrap(),
        }
    }

    fn tags(buffer: &mut SampleBuffer) -> Vec<String> {
        std::iter::from_fn(|| buffer.pop())
            .map(|b| b.json.get().to_owned())
            .collect()
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_batches_and_counts_their_samples() {
        let mut buffer = SampleBuffer::new(100);
        for tag in 0..10 {
            assert_eq!(buffer.push(batch(tag, 25)), if tag < 4 { 0 } else { 25 });
        }
        assert_eq!(buffer.buffered_samples(), 100);
        assert_eq!(buffer.dropped_total(), 150);
        assert_eq!(buffer.take_unreported_drops(), 150);
        assert_eq!(buffer.take_unreported_drops(), 0, "reported once");
        assert_eq!(tags(&mut buffer), ["[6]", "[7]", "[8]", "[9]"]);
        assert_eq!(buffer.buffered_samples(), 0);
    }

    #[test]
    fn memory_stays_bounded_however_long_the_outage() {
        let mut buffer = SampleBuffer::new(1_000);
        for tag in 0..100_000 {
            buffer.push(batch(tag, 23));
            assert!(buffer.buffered_samples() <= 1_000);
        }
        assert_eq!(
            buffer.buffered_samples() + buffer.dropped_total() as usize,
            2_300_000
        );
        assert!(buffer.batches.len() <= 1_000 / 23);
    }

    #[test]
    fn a_batch_that_could_not_be_sent_goes_back_first_unless_newer_ones_filled_its_room() {
        let mut buffer = SampleBuffer::new(100);
        buffer.push(batch(1, 40));
        buffer.push(batch(2, 40));
        let first = buffer.pop().unwrap();
        buffer.restore(first);
        assert_eq!(tags(&mut buffer), ["[1]", "[2]"]);

        buffer.push(batch(3, 40));
        let oldest = buffer.pop().unwrap();
        buffer.push(batch(4, 60));
        buffer.push(batch(5, 40));
        buffer.restore(oldest);
        assert_eq!(buffer.dropped_total(), 40);
        assert_eq!(tags(&mut buffer), ["[4]", "[5]"]);
    }
}
