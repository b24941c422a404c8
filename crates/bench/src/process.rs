//! Child processes of the benchmark and their peak memory.

use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// Exit status and resource use of a finished child process.
#[derive(Debug, Clone, Copy)]
pub struct ChildUsage {
    pub status: ExitStatus,
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// Peak resident set size in KB (`ru_maxrss` of `wait4`, which Linux
    /// takes from the same high-water mark that `/proc/PID/status` shows as
    /// `VmHWM`).
    pub peak_rss_kb: u64,
    /// CPU time the child spent in user and kernel mode.
    pub cpu: Duration,
    /// Busy CPU time of the whole machine while the child ran, every
    /// process included, to show what else competed for the cores.
    pub machine_busy: Duration,
}

/// Runs `command` to its end and returns its exit status, wall time, peak
/// memory and CPU time.
///
/// # Errors
///
/// When the child cannot be started or waited for.
pub fn run_measured(command: &mut std::process::Command) -> anyhow::Result<ChildUsage> {
    let machine = MachineCpu::now();
    let start = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {:?} failed", command.get_program()))?;
    let pid = libc::pid_t::try_from(child.id()).context("process id out of range")?;

    let mut raw_status: libc::c_int = 0;
    // SAFETY: `rusage` is plain old data, so all-zero bytes are a valid
    // value, and `wait4` writes only into the two out-pointers given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = loop {
        // SAFETY: `pid` is our own child, not yet reaped, and both pointers
        // refer to live locals.
        let result = unsafe { libc::wait4(pid, &mut raw_status, 0, &mut usage) };
        if result == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        }
        break result;
    };
    let wall = start.elapsed();
    if waited != pid {
        bail!(
            "waiting for child process {pid} failed: {}",
            std::io::Error::last_os_error()
        );
    }
    // `wait4` reaped the child, and dropping the handle does not wait again.
    drop(child);

    let status = std::os::unix::process::ExitStatusExt::from_raw(raw_status);
    Ok(ChildUsage {
        status,
        wall,
        peak_rss_kb: u64::try_from(usage.ru_maxrss).unwrap_or(0),
        cpu: cpu_time(&usage),
        machine_busy: machine.busy_since(),
    })
}

fn cpu_time(usage: &libc::rusage) -> Duration {
    let timeval = |time: libc::timeval| {
        Duration::from_secs(u64::try_from(time.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(time.tv_usec).unwrap_or(0))
    };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// Returns the CPU time this process has used so far, user and kernel.
pub fn own_cpu() -> Duration {
    // SAFETY: as in `run_measured`, an all-zero `rusage` is valid and
    // `getrusage` writes only into it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pointer refers to a live local.
    let result = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if result == 0 {
        cpu_time(&usage)
    } else {
        Duration::ZERO
    }
}

/// Reads `VmHWM` (peak resident set size) and `VmRSS` of a running process,
/// in KB.
///
/// # Errors
///
/// When `/proc/PID/status` cannot be read or lacks the fields (not Linux).
pub fn memory_kb(pid: u32) -> anyhow::Result<(u64, u64)> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("reading {path} failed"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|line| line.starts_with(name))
            .with_context(|| format!("no {name} line in {path}"))?;
        line.trim_start_matches(name)
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("invalid {name} line in {path}: {line:?}"))
    };
    Ok((field("VmHWM:")?, field("VmRSS:")?))
}

/// Formats KB as MB with one decimal.
pub fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// Busy CPU time of the whole machine, all processes together, read from
/// the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub struct MachineCpu {
    busy_ticks: u64,
}

impl MachineCpu {
    /// Reads the counters now; all zero when `/proc/stat` is unreadable.
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal: everything but
        // idle and iowait is busy.
        let busy_ticks = fields
            .iter()
            .take(8)
            .enumerate()
            .filter(|(index, _)| *index != 3 && *index != 4)
            .map(|(_, ticks)| ticks)
            .sum();
        Self { busy_ticks }
    }

    /// Busy CPU time of the machine since `self` was read.
    pub fn busy_since(self) -> Duration {
        // SAFETY: `sysconf` only reads a configuration value.
        let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks_per_second = u64::try_from(ticks_per_second).unwrap_or(100).max(1);
        let ticks = Self::now().busy_ticks.saturating_sub(self.busy_ticks);
        Duration::from_millis(ticks * 1000 / ticks_per_second)
    }
}
