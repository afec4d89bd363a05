//! What a process uses, read from Linux's `/proc`: CPU time (user plus
//! system, all threads) and resident memory.

use std::time::Duration;

/// The unit of `/proc/PID/stat`'s CPU times: `USER_HZ`, 100 on every Linux
/// architecture Tollgate runs on.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time (user + system) process `pid` has used so far.
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu(&stat).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/stat has no CPU times"),
        )
    })
}

/// Its resident memory now (`VmRSS`), KiB.
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_rss(&status).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("/proc/{pid}/status has no VmRSS"),
        )
    })
}

/// `utime + stime` of a `/proc/PID/stat` line. The command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last
/// `)`: the state is field 3, utime 14, stime 15.
fn parse_cpu(stat: &str) -> Option<Duration> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    let ticks = utime + stime;
    Some(
        Duration::from_secs(ticks / TICKS_PER_SECOND)
            + Duration::from_millis((ticks % TICKS_PER_SECOND) * 1000 / TICKS_PER_SECOND),
    )
}

/// `VmRSS` of a `/proc/PID/status`, KiB.
fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::{cpu_time, parse_cpu, parse_rss, rss_kib};
    use std::time::Duration;

    #[test]
    fn cpu_times_are_read_past_a_command_name_with_spaces() {
        let stat = "4242 (tollgate (x) y) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 130 0 0 20 0 9 0 1000 100000 2000";
        assert_eq!(parse_cpu(stat), Some(Duration::from_millis(3800)));
        assert_eq!(parse_cpu("garbage"), None);
    }

    #[test]
    fn rss_is_read_from_status() {
        let status = "Name:\ttollgate\nVmPeak:\t  9000 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(parse_rss(status), Some(51234));
    }

    #[test]
    fn this_process_can_be_measured() {
        let me = std::process::id();
        assert!(rss_kib(me).is_ok_and(|kib| kib > 0));
        assert!(cpu_time(me).is_ok());
    }
}
