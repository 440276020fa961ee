//! Giving memory back to the system after a spike. glibc's allocator keeps what the
//! process frees in its arenas: after 10,000 connections came and went the soak left the
//! proxy at 421 MiB while idle, and `malloc_trim(0)` brought a 141 MiB process back to
//! 55 MiB. A sidecar shares a small machine with the sandbox, so every few seconds the
//! proxy asks glibc how much it holds free and trims when that has grown by more than
//! [`TRIM_GROWTH`] since the last trim. Two libc calls; no crate does this for glibc.

use std::time::Duration;

/// How often the free memory is looked at.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// Trim when the allocator holds this much more free memory than after the last trim.
pub const TRIM_GROWTH: usize = 32 << 20;

/// Remembers the free memory left after the last trim.
#[derive(Debug, Default)]
pub struct Trimmer {
    baseline: usize,
}

impl Trimmer {
    /// Trim if the free memory has grown by more than [`TRIM_GROWTH`]; returns whether it
    /// trimmed. Takes a few milliseconds when it trims, microseconds when it does not.
    pub fn check(&mut self) -> bool {
        let Some(free) = free_bytes() else {
            return false;
        };
        if !self.should_trim(free) {
            return false;
        }
        trim();
        self.baseline = free_bytes().unwrap_or(0);
        true
    }

    fn should_trim(&mut self, free: usize) -> bool {
        // Free memory reused since the last trim lowers the baseline, so the next spike
        // is measured from there.
        self.baseline = self.baseline.min(free);
        free > self.baseline + TRIM_GROWTH
    }
}

/// Check every [`CHECK_EVERY`] for as long as the runtime runs.
pub fn spawn_trimmer() {
    tokio::spawn(async {
        let mut trimmer = Trimmer::default();
        let mut tick = tokio::time::interval(CHECK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if trimmer.check() {
                tracing::debug!("returned free memory to the system");
            }
        }
    });
}

/// Bytes the allocator holds free (glibc's `fordblks`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn free_bytes() -> Option<usize> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
    let info = unsafe { libc::mallinfo2() };
    Some(info.fordblks)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn free_bytes() -> Option<usize> {
    None
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only releases free pages of the allocator's own arenas.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use super::*;

    #[allow(clippy::unwrap_used)]
    fn rss_bytes() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    #[test]
    fn a_spike_of_freed_memory_is_returned_once() {
        let mut trimmer = Trimmer::default();
        trimmer.check();
        // 128 MiB in 4 KiB blocks, below glibc's mmap threshold: freed into the arena.
        let mut blocks: Vec<Vec<u8>> = (0..32 * 1024).map(|i| vec![i as u8; 4096]).collect();
        let peak = rss_bytes();
        // Keep the last block alive so the freed memory is not all at the top of the heap
        // (which free() alone would give back).
        let keep = blocks.pop();
        drop(blocks);
        assert!(trimmer.check(), "128 MiB freed, not trimmed");
        let after = rss_bytes();
        assert!(
            after + (64 << 20) < peak,
            "RSS {} MiB after the trim, {} MiB at the peak",
            after >> 20,
            peak >> 20
        );
        drop(keep);
    }

    #[test]
    fn trims_on_growth_over_the_lowest_level_since_the_last_trim() {
        const MIB: usize = 1 << 20;
        let mut t = Trimmer { baseline: 10 * MIB };
        assert!(!t.should_trim(40 * MIB), "30 MiB growth");
        assert!(t.should_trim(43 * MIB), "33 MiB growth");
        t.baseline = 40 * MIB; // what a trim left
        assert!(!t.should_trim(41 * MIB), "nothing new freed");
        assert!(!t.should_trim(5 * MIB), "memory reused");
        assert!(
            t.should_trim(38 * MIB),
            "a new spike, measured from the low"
        );
    }
}
