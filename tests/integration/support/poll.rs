//! Waiting for something to become true instead of sleeping a fixed time: a passing test
//! goes on as soon as the condition holds, so deadlines can be generous enough for a
//! loaded 2-CPU machine at no cost.

use std::future::Future;
use std::time::{Duration, Instant};

/// What a check reports: `true` or `Some(value)` when the wait is over.
pub trait Outcome {
    type Value;
    fn done(self) -> Option<Self::Value>;
}

impl Outcome for bool {
    type Value = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// The pause after the `n`th unsuccessful check: 10 ms, doubling up to 100 ms.
fn pause(n: u32) -> Duration {
    Duration::from_millis((10u64 << n.min(4)).min(100))
}

/// Run `check` (at once, then again after short pauses) until it reports done, and
/// return what it reported; `None` when `timeout` passed first (the caller says what
/// did not happen).
pub async fn poll_until<F, Fut>(
    timeout: Duration,
    mut check: F,
) -> Option<<Fut::Output as Outcome>::Value>
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let deadline = Instant::now() + timeout;
    for n in 0.. {
        if let Some(value) = check().await.done() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(pause(n)).await;
    }
    None
}

/// [`poll_until`] for plain threads (no runtime): `check` runs on this thread.
pub fn wait_until<T: Outcome>(timeout: Duration, mut check: impl FnMut() -> T) -> Option<T::Value> {
    let deadline = Instant::now() + timeout;
    for n in 0.. {
        if let Some(value) = check().done() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(pause(n));
    }
    None
}
