//! CPU time of processes, read from Linux's /proc, so a report can say what each side of a
//! run cost (and show that the load generator itself was not the bottleneck).

/// Clock ticks per second in /proc's figures: Linux's USER_HZ, 100 on every architecture
/// it exports to user space.
const USER_HZ: f64 = 100.0;

/// User plus system CPU seconds of a process ("self" or a pid), all its threads; `None`
/// where /proc is not there to read.
pub fn process_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its end.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_cpu_grows_with_work() {
        // Spin until the figure moves (a tick is 10 ms of CPU); it must within a generous
        // wall-clock bound however busy the machine is.
        let before = super::process_seconds("self").expect("/proc/self/stat");
        let t = std::time::Instant::now();
        let mut x = 0u64;
        loop {
            for _ in 0..1_000_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            let now = super::process_seconds("self").expect("/proc/self/stat");
            if now > before {
                break;
            }
            assert!(
                t.elapsed().as_secs() < 60,
                "CPU time never grew from {before}"
            );
        }
    }
}
