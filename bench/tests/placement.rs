//! A floor placed apart ([`Placement::Apart`]), in a test process of its own: the run pins
//! every thread of the process, which would move the threads of any test running beside it.

use std::time::{Duration, Instant};

use nix::sched::{CpuSet, sched_getaffinity};
use nix::unistd::Pid;
use tickcast_bench::floors::{self, Placement};
use tickcast_bench::server::procinfo::{self, BOTS_CPU, PinnedProcess, SERVER_CPU};

/// Each thread of this process: its id, its name and the CPUs it may run on. A thread that
/// ends meanwhile is left out.
fn threads() -> Vec<(i32, String, CpuSet)> {
    let tasks = std::fs::read_dir("/proc/self/task").unwrap();
    let tids = tasks.filter_map(|t| t.ok()?.file_name().to_str()?.parse::<i32>().ok());
    tids.filter_map(|tid| {
        let name = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).ok()?;
        let cpus = sched_getaffinity(Pid::from_raw(tid)).ok()?;
        Some((tid, name.trim_end().to_owned(), cpus))
    })
    .collect()
}

fn only(cpu: usize) -> CpuSet {
    let mut set = CpuSet::new();
    set.set(cpu).unwrap();
    set
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_placed_apart_writes_from_cpu_0_to_ends_on_cpu_1_and_unpins_every_thread() {
    let before = procinfo::affinity().unwrap();
    let ours = |cpu| before.is_set(cpu).unwrap_or(false);
    if !(ours(SERVER_CPU) && ours(BOTS_CPU)) {
        assert!(std::env::var_os("CI").is_none(), "CPUs 0 and 1 are not both ours in CI");
        eprintln!("skipped: CPUs 0 and 1 are not both ours");
        return;
    }
    let threads_before = threads();
    let run = tokio::spawn(floors::fanout(20, 300, 30, Duration::from_secs(1), Placement::Apart));
    // Once the floor's thread has moved itself (it starts where its maker is, on CPU 1), every
    // other thread must be on CPU 1.
    let deadline = Instant::now() + Duration::from_secs(10);
    let during = loop {
        let now = threads();
        if now
            .iter()
            .any(|(_, name, cpus)| name == "floor" && *cpus == only(SERVER_CPU))
        {
            break now;
        }
        assert!(Instant::now() < deadline, "no floor thread on CPU 0: {now:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let others: Vec<_> = during.iter().filter(|(_, name, _)| name != "floor").collect();
    assert!(others.iter().all(|(_, _, cpus)| *cpus == only(BOTS_CPU)), "{during:?}");

    let floor = run.await.unwrap().unwrap();
    assert!(floor.writes + floor.would_block >= 100, "{floor:?}");
    // Every thread that was there before is back where it was (they all had the same CPUs).
    let after = threads();
    for (tid, name, cpus) in threads_before {
        if let Some((_, _, now)) = after.iter().find(|(t, _, _)| *t == tid) {
            assert_eq!(*now, cpus, "thread {tid} ({name})");
        }
    }

    // One pinning at a time: a second would take the first's CPU for the process's own.
    let first = PinnedProcess::to(BOTS_CPU).unwrap();
    assert!(PinnedProcess::to(SERVER_CPU).is_err());
    drop(first);
    assert_eq!(procinfo::affinity().unwrap(), before);
}
