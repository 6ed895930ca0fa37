//! CPU affinity syscalls for pinning workers (kept here with the other
//! syscall wrappers, so `runtime/` needs no `unsafe`).

use std::io;

/// The CPUs this process may run on (its affinity mask, e.g. from `taskset`).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is a zeroed cpu_set_t owned by this frame; the kernel
    // writes at most `size_of` bytes into it; CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Pin the calling thread to `cpu`; logs and carries on when it cannot.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: `set` is a zeroed cpu_set_t owned by this frame; CPU_SET writes
    // inside it; sched_setaffinity reads `size_of` bytes of it for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            tracing::warn!(
                "cannot pin worker to CPU {cpu}: {}",
                io::Error::last_os_error()
            );
        }
    }
}
