//! Process-level protection for a process that holds keys: no core dumps, and not
//! dumpable (other processes of the same user cannot ptrace it or read its memory
//! through /proc).

/// Apply at start-up, before any key is loaded. Failures are logged, not fatal: the
/// proxy still works where the kernel refuses (some containers).
pub fn protect_process() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl(PR_SET_DUMPABLE) and setrlimit take plain integer arguments and a
        // pointer to a local struct; neither touches Rust-managed memory.
        let dumpable = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let core = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        if dumpable != 0 || core != 0 {
            eprintln!("tokenizer: warning: could not disable core dumps for this process");
        }
    }
}

/// Is the process dumpable (Linux)?
pub fn is_dumpable() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_GET_DUMPABLE takes no pointers.
        unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 }
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn the_process_is_not_dumpable_and_has_no_core_limit() {
        super::protect_process();
        assert!(!super::is_dumpable());
        let mut lim = libc::rlimit {
            rlim_cur: 1,
            rlim_max: 1,
        };
        // SAFETY: getrlimit writes into the local struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, 0);
    }
}
