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

/// Raise the soft limit on open files to the hard limit, as Go's runtime does at start-up
/// (Go 1.19+), so the Go tokenizer this replaces gets it for free. Every proxied request
/// holds two sockets (client and upstream), and the usual soft limit of 1024 would
/// otherwise fail requests with EMFILE (502 `Too many open files`) at about 500 at once,
/// long before `MAX_CONNECTIONS`. Returns the soft limit now in force.
pub fn raise_open_file_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read or write the local struct only.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim = raised;
            }
        }
        Some(lim.rlim_cur)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
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
    fn the_open_file_soft_limit_is_raised_to_the_hard_limit() {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit read or write the local struct only.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        // Start from the usual soft limit (1024), below the hard one.
        let low = libc::rlimit {
            rlim_cur: lim.rlim_max.min(1024),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
        assert_eq!(super::raise_open_file_limit(), Some(lim.rlim_max));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }

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
