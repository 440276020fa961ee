//! The async runtime of the long-running subcommands.

use std::num::NonZeroUsize;

use super::Failure;

/// One worker per CPU this process may run on. Pinned to a single CPU (`taskset`, a
/// one-vCPU machine) a current-thread runtime does the same work without the
/// multi-threaded scheduler's cross-thread queues and wake-ups. `TOKIO_WORKER_THREADS`,
/// when set, keeps tokio's own choice.
pub fn build() -> Result<tokio::runtime::Runtime, Failure> {
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n == NonZeroUsize::MIN);
    let mut builder = if one_cpu && std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(e.to_string()))
}
