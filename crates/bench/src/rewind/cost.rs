//! What keeping the delayed copy costs: CPU time of its server processes (the postmaster named
//! in its `postmaster.pid` and that process's children, from `/proc`) and its size on disk.

use std::path::Path;

use anyhow::{Context as _, Result};

/// Clock ticks per second of `/proc/<pid>/stat` times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) the copy's server processes have used so far. Children that
/// exited are counted in the postmaster's `cutime`/`cstime`.
pub fn cpu_secs(copy_dir: &Path) -> Result<f64> {
    let pid_file = copy_dir.join("postmaster.pid");
    let text = std::fs::read_to_string(&pid_file)
        .with_context(|| format!("reading {}", pid_file.display()))?;
    let postmaster: u32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("postmaster.pid names no pid")?;
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(fields) = stat_fields(&stat) else {
            continue;
        };
        if pid == postmaster {
            // utime, stime, cutime, cstime
            ticks += fields[11] + fields[12] + fields[13] + fields[14];
        } else if fields[1] == u64::from(postmaster) {
            ticks += fields[11] + fields[12];
        }
    }
    Ok(ticks as f64 / TICKS_PER_SEC)
}

/// The numeric fields of `/proc/<pid>/stat` after the command name, as numbers; index 0 is the
/// state (0), 1 the parent pid, 11..=14 utime, stime, cutime, cstime.
fn stat_fields(stat: &str) -> Option<Vec<u64>> {
    // The command name is in parentheses and may hold spaces.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    (fields.len() > 14).then_some(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_skip_a_command_name_with_spaces() {
        let stat = "4242 (postgres: walreceiver x) S 4200 4242 4242 0 -1 4194560 10 0 0 0 7 3 1 2 20 0 1 0";
        let f = stat_fields(stat).expect("fields");
        assert_eq!(f[1], 4200);
        assert_eq!((f[11], f[12], f[13], f[14]), (7, 3, 1, 2));
    }
}
