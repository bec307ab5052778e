//! What Linux says about a process: CPU time, memory, open file descriptors, and the
//! file-descriptor limit. The measuring commands read the server's figures from here rather
//! than trusting the server to report on itself.
//!
//! - CPU time of a whole process is `utime + stime` from `/proc/<pid>/stat`, in clock ticks
//!   (`sysconf(_SC_CLK_TCK)`, 100 on Linux: a 10 ms resolution, fine over windows of seconds).
//! - CPU time of one thread is `getrusage(RUSAGE_THREAD)`, in microseconds.
//! - Memory is `VmRSS` (resident now) and `VmHWM` (the peak resident size) from
//!   `/proc/<pid>/status`.
//! - The machine's load average (is anything else running?) is `/proc/loadavg`.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::sys::resource::{Resource, UsageWho, getrlimit, getrusage, setrlimit};
use nix::unistd::{Pid, SysconfVar, sysconf};

/// Clock ticks per second, the unit of `/proc/<pid>/stat`'s CPU times.
pub fn clock_ticks_per_sec() -> u64 {
    // Linux has answered 100 on every architecture for decades; the call cannot really fail.
    match sysconf(SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as u64,
        _ => 100,
    }
}

/// User plus system CPU time a process has used so far, all its threads included.
pub fn cpu_time(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_cpu_ticks(&stat).ok_or_else(|| bad(&format!("/proc/{pid}/stat")))?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks_per_sec() as f64))
}

/// `utime + stime` from the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted after the
/// last `)`: state is field 3, utime 14 and stime 15.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11); // fields 3..=13
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time this thread has used so far (user plus system).
pub fn thread_cpu_time() -> io::Result<Duration> {
    let usage = getrusage(UsageWho::RUSAGE_THREAD).map_err(io::Error::from)?;
    let micros = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e6 + t.tv_usec() as f64;
    Ok(Duration::from_secs_f64(
        (micros(usage.user_time()) + micros(usage.system_time())) / 1e6,
    ))
}

/// A process's resident memory, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The highest resident size so far (`VmHWM`).
    pub peak_kib: u64,
}

/// The resident memory of a process.
pub fn memory(pid: u32) -> io::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_memory(&status).ok_or_else(|| bad(&format!("/proc/{pid}/status")))
}

/// `VmRSS` and `VmHWM` from the text of `/proc/<pid>/status` (lines like `VmRSS:  2024 kB`).
pub fn parse_status_memory(status: &str) -> Option<Memory> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
    };
    Some(Memory {
        rss_kib: field("VmRSS")?,
        peak_kib: field("VmHWM")?,
    })
}

/// How many file descriptors a process has open (sockets included).
pub fn open_fds(pid: u32) -> io::Result<usize> {
    Ok(std::fs::read_dir(format!("/proc/{pid}/fd"))?.count())
}

/// Memory the kernel holds in TCP socket buffers on this machine (all processes), KiB: what a
/// peer that stops reading costs, which no process's RSS shows. From `/proc/net/sockstat`.
pub fn tcp_buffer_kib() -> io::Result<u64> {
    let sockstat = std::fs::read_to_string("/proc/net/sockstat")?;
    parse_sockstat_tcp_pages(&sockstat)
        .map(|pages| pages * 4)
        .ok_or_else(|| bad("/proc/net/sockstat"))
}

/// The `mem` field (in 4 KiB pages) of the `TCP:` line of `/proc/net/sockstat`.
pub fn parse_sockstat_tcp_pages(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
    let mut fields = line.split_whitespace();
    fields.find(|&f| f == "mem")?;
    fields.next()?.parse().ok()
}

/// Pins every thread of process `pid` to CPU `cpu`. Threads it starts later inherit the
/// pinning of the thread that starts them.
pub fn pin(pid: u32, cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(io::Error::from)?;
    set_affinity(pid, &set)
}

/// Sets the CPUs every thread of process `pid` may run on.
pub fn set_affinity(pid: u32, set: &CpuSet) -> io::Result<()> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Some(tid) = task?.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        // A thread that ended meanwhile is no matter.
        match sched_setaffinity(Pid::from_raw(tid), set) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// Where a pinned `load` runs the server, and a floor placed apart its own thread.
pub const SERVER_CPU: usize = 0;
/// Where a pinned `load` runs the bots, and a floor placed apart the players' ends.
pub const BOTS_CPU: usize = 1;

/// Whether a [`PinnedProcess`] is alive: one at a time, since each restores what the thread
/// that made it had, which a second one would take for the process's own CPUs.
static PINNED: AtomicBool = AtomicBool::new(false);

/// This process's threads pinned to one CPU until dropped; then every thread on the CPUs the
/// thread that made it had before. One at a time: a second fails while the first lives.
#[derive(Debug)]
pub struct PinnedProcess {
    before: CpuSet,
}

impl PinnedProcess {
    /// Every thread of this process on CPU `cpu`, and the threads it starts meanwhile.
    pub fn to(cpu: usize) -> io::Result<Self> {
        let before = affinity()?;
        if PINNED.swap(true, Ordering::AcqRel) {
            return Err(io::Error::other("this process is pinned already"));
        }
        // Made first, so that a pinning that fails halfway is undone.
        let guard = Self { before };
        pin(std::process::id(), cpu)?;
        Ok(guard)
    }

    /// Every thread of this process on CPU `cpu` instead.
    pub fn move_to(&self, cpu: usize) -> io::Result<()> {
        pin(std::process::id(), cpu)
    }
}

impl Drop for PinnedProcess {
    fn drop(&mut self) {
        if let Err(err) = set_affinity(std::process::id(), &self.before) {
            eprintln!("could not unpin this process: {err}");
        }
        PINNED.store(false, Ordering::Release);
    }
}

/// The CPUs the calling thread may run on.
pub fn affinity() -> io::Result<CpuSet> {
    // Pid 0 is the calling thread.
    sched_getaffinity(Pid::from_raw(0)).map_err(io::Error::from)
}

/// Pins the calling thread to CPU `cpu`.
pub fn pin_this_thread(cpu: usize) -> io::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu).map_err(io::Error::from)?;
    sched_setaffinity(Pid::from_raw(0), &set).map_err(io::Error::from)
}

/// Raises this process's soft limit on open files towards `wanted`, up to the hard limit, and
/// returns the soft limit now in force. Child processes (the server we start) inherit it.
pub fn raise_open_files_limit(wanted: u64) -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    let target = wanted.min(hard);
    if target > soft {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard).map_err(io::Error::from)?;
        return Ok(target);
    }
    Ok(soft)
}

/// Too few file descriptors for a run, even after raising the soft limit to the hard one.
#[derive(Debug, thiserror::Error)]
#[error(
    "the open-files limit is {soft} (hard {hard}) but this run needs {needed}: run `ulimit -n {needed}` first (raising the hard limit needs root), or ask for fewer connections"
)]
pub struct TooFewDescriptors {
    /// The soft limit in force.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
    /// What the run needs.
    pub needed: u64,
}

/// Raises the soft open-files limit to at least `needed` (children inherit it), or says why it
/// cannot.
pub fn ensure_open_files(needed: u64) -> Result<u64, TooFewDescriptors> {
    let fail = |soft, hard| TooFewDescriptors { soft, hard, needed };
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|_| fail(0, 0))?;
    let raised = raise_open_files_limit(needed).unwrap_or(soft);
    if raised < needed {
        return Err(fail(raised, hard));
    }
    Ok(raised)
}

/// The machine's 1-minute load average: runnable tasks, averaged; on 2 cores, above ~1 while
/// nothing of ours runs means someone else is using the machine.
pub fn load_average() -> io::Result<f64> {
    let loadavg = std::fs::read_to_string("/proc/loadavg")?;
    loadavg
        .split_whitespace()
        .next()
        .and_then(|first| first.parse().ok())
        .ok_or_else(|| bad("/proc/loadavg"))
}

/// Cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("cannot parse {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        // A command name with a space and a parenthesis, as a process may choose.
        let stat = "4242 (tick cast) (x) S 1 4242 4242 0 -1 4194560 900 0 0 0 1234 56 0 0 20 0 3 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(1290));
        assert_eq!(parse_stat_cpu_ticks("4242 (truncated) S 1"), None);
    }

    #[test]
    fn tcp_buffer_pages_are_read_from_sockstat() {
        let sockstat = "sockets: used 90\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 12\nUDP: inuse 0 mem 3\n";
        assert_eq!(parse_sockstat_tcp_pages(sockstat), Some(12));
        assert_eq!(parse_sockstat_tcp_pages("UDP: inuse 0 mem 3\n"), None);
    }

    #[test]
    fn status_memory_lines_are_read_in_kib() {
        let status = "Name:\ttickcast\nVmHWM:\t   51200 kB\nVmRSS:\t   40960 kB\nThreads:\t3\n";
        let memory = parse_status_memory(status).unwrap();
        assert_eq!((memory.rss_kib, memory.peak_kib), (40960, 51200));
        assert_eq!(parse_status_memory("Name:\tx\n"), None);
    }
}
