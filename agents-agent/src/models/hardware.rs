//! What the machine has: memory, CPU load, GPUs and their VRAM. The fit
//! check and `coworkctl system` use these same numbers. The parsers are
//! pure; `detect` reads /proc, sysfs and (when present) nvidia-smi on
//! Linux, and sysctl/vm_stat on macOS.

use super::fit::Memory;
use std::time::Duration;

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    /// Its name as the driver reports it.
    pub name: String,
    /// Dedicated VRAM.
    pub vram_total: u64,
    /// VRAM in use.
    pub vram_used: u64,
    /// Where the numbers came from.
    pub source: String,
}

/// A snapshot of the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct System {
    /// Total RAM.
    pub total_memory: u64,
    /// RAM available to new work (MemAvailable).
    pub available_memory: u64,
    /// Apple Silicon: GPU and CPU share RAM.
    pub unified_memory: bool,
    /// Logical CPUs.
    pub cpu_count: u32,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    /// Busy share of all CPUs over the sample, 0–100.
    pub cpu_percent: f64,
    /// Discrete GPUs found.
    pub gpus: Vec<Gpu>,
}

impl System {
    /// RAM in use.
    pub fn used_memory(&self) -> u64 {
        self.total_memory.saturating_sub(self.available_memory)
    }

    /// The memory the fit check counts: RAM, plus VRAM summed over
    /// discrete GPUs (none with unified memory).
    pub fn memory(&self) -> Memory {
        let vram: u64 = self.gpus.iter().map(|g| g.vram_total).sum();
        Memory {
            total_ram: self.total_memory,
            vram: (!self.unified_memory && vram > 0).then_some(vram),
        }
    }
}

/// `MemTotal` and `MemAvailable` from /proc/meminfo, in bytes.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let mut it = rest.split_whitespace();
            let n: u64 = it.next()?.parse().ok()?;
            match it.next() {
                Some("kB") => Some(n * 1024),
                None => Some(n),
                _ => None,
            }
        })
    };
    let total = field("MemTotal")?;
    let avail = field("MemAvailable").or_else(|| field("MemFree"))?;
    Some((total, avail.min(total)))
}

/// The three load averages of /proc/loadavg.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// (busy, total) jiffies from the aggregate `cpu` line of /proc/stat.
pub fn parse_stat(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if v.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v[3] + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// Busy percentage between two /proc/stat samples.
pub fn cpu_percent(a: (u64, u64), b: (u64, u64)) -> f64 {
    let (busy, total) = (b.0.saturating_sub(a.0), b.1.saturating_sub(a.1));
    if total == 0 {
        0.0
    } else {
        100.0 * busy as f64 / total as f64
    }
}

/// `nvidia-smi --query-gpu=name,memory.total,memory.used
/// --format=csv,noheader,nounits` (MiB).
pub fn parse_nvidia_smi(text: &str) -> Vec<Gpu> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(',').map(str::trim);
            let name = it.next()?.to_string();
            let total: u64 = it.next()?.parse().ok()?;
            let used: u64 = it.next()?.parse().ok()?;
            Some(Gpu {
                name,
                vram_total: total * 1024 * 1024,
                vram_used: used * 1024 * 1024,
                source: "nvidia-smi".into(),
            })
        })
        .collect()
}

/// Read the machine now (blocking: samples the CPU for `sample`).
pub fn detect(sample: Duration) -> System {
    #[cfg(target_os = "macos")]
    {
        detect_macos(sample)
    }
    #[cfg(not(target_os = "macos"))]
    {
        detect_linux(sample)
    }
}

#[cfg(not(target_os = "macos"))]
fn detect_linux(sample: Duration) -> System {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (total, avail) = parse_meminfo(&read("/proc/meminfo")).unwrap_or((0, 0));
    let a = parse_stat(&read("/proc/stat"));
    std::thread::sleep(sample);
    let b = parse_stat(&read("/proc/stat"));
    let cpu = match (a, b) {
        (Some(a), Some(b)) => cpu_percent(a, b),
        _ => 0.0,
    };
    let mut gpus = amd_sysfs();
    gpus.extend(nvidia());
    System {
        total_memory: total,
        available_memory: avail,
        unified_memory: false,
        cpu_count: cpus(),
        load: parse_loadavg(&read("/proc/loadavg")).unwrap_or_default(),
        cpu_percent: cpu,
        gpus,
    }
}

fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// amdgpu exposes VRAM in sysfs.
#[cfg(not(target_os = "macos"))]
fn amd_sysfs() -> Vec<Gpu> {
    let mut out = Vec::new();
    let Ok(cards) = std::fs::read_dir("/sys/class/drm") else {
        return out;
    };
    for c in cards.flatten() {
        let name = c.file_name().to_string_lossy().into_owned();
        if !name.starts_with("card") || name.contains('-') {
            continue;
        }
        let dev = c.path().join("device");
        let num = |f: &str| -> Option<u64> {
            std::fs::read_to_string(dev.join(f))
                .ok()?
                .trim()
                .parse()
                .ok()
        };
        if let Some(total) = num("mem_info_vram_total") {
            out.push(Gpu {
                name: std::fs::read_to_string(dev.join("product_name"))
                    .map(|s| s.trim().to_string())
                    .unwrap_or_else(|_| format!("amdgpu {name}")),
                vram_total: total,
                vram_used: num("mem_info_vram_used").unwrap_or(0),
                source: "amdgpu sysfs".into(),
            });
        }
    }
    out
}

/// NVIDIA GPUs through nvidia-smi, when it is installed (2 s limit).
fn nvidia() -> Vec<Gpu> {
    let out = run_with_limit(
        "nvidia-smi",
        &[
            "--query-gpu=name,memory.total,memory.used",
            "--format=csv,noheader,nounits",
        ],
    );
    out.map(|t| parse_nvidia_smi(&t)).unwrap_or_default()
}

/// Run a program and return its stdout, or None if it is missing, fails
/// or takes over 2 s (its output is read while it runs, so a long answer
/// cannot stall it).
fn run_with_limit(program: &str, args: &[&str]) -> Option<String> {
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(2)) {
        Ok(Ok(out)) if out.status.success() => String::from_utf8(out.stdout).ok(),
        Ok(_) => None,
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            None
        }
    }
}

#[cfg(target_os = "macos")]
fn detect_macos(sample: Duration) -> System {
    let sysctl = |k: &str| run_with_limit("sysctl", &["-n", k]).unwrap_or_default();
    let total: u64 = sysctl("hw.memsize").trim().parse().unwrap_or(0);
    let page: u64 = sysctl("hw.pagesize").trim().parse().unwrap_or(4096);
    // Free + inactive + speculative pages are available to new work.
    let vm = run_with_limit("vm_stat", &[]).unwrap_or_default();
    let pages = |label: &str| -> u64 {
        vm.lines()
            .find(|l| l.starts_with(label))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().trim_end_matches('.').parse().ok())
            .unwrap_or(0)
    };
    let avail = (pages("Pages free") + pages("Pages inactive") + pages("Pages speculative")) * page;
    let load = parse_loadavg(
        sysctl("vm.loadavg")
            .trim()
            .trim_start_matches('{')
            .trim_end_matches('}'),
    )
    .unwrap_or_default();
    std::thread::sleep(sample.min(Duration::from_millis(1)));
    System {
        total_memory: total,
        available_memory: avail.min(total),
        unified_memory: cfg!(target_arch = "aarch64"),
        cpu_count: cpus(),
        load,
        cpu_percent: (load[0] / cpus() as f64 * 100.0).min(100.0),
        gpus: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_read_proc_formats() {
        let mi = "MemTotal:       16318496 kB\nMemFree:  100 kB\nMemAvailable:   12000000 kB\n";
        assert_eq!(parse_meminfo(mi), Some((16318496 * 1024, 12000000 * 1024)));
        assert_eq!(parse_meminfo("MemFree: 1 kB"), None);
        assert_eq!(
            parse_loadavg("0.02 0.63 1.15 2/81 3819"),
            Some([0.02, 0.63, 1.15])
        );
        let a = parse_stat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4").unwrap();
        let b = parse_stat("cpu  200 0 100 1600 100 0 0 0 0 0").unwrap();
        assert_eq!(a, (150, 1000));
        assert!((cpu_percent(a, b) - 15.0).abs() < 1e-9);
        let g = parse_nvidia_smi("NVIDIA GeForce RTX 4090, 24564, 1200\nbad line\n");
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].vram_total, 24564 * 1024 * 1024);
    }

    #[test]
    fn memory_counts_vram_only_for_discrete_gpus() {
        let mut s = System {
            total_memory: 16,
            available_memory: 8,
            unified_memory: false,
            cpu_count: 2,
            load: [0.0; 3],
            cpu_percent: 0.0,
            gpus: vec![],
        };
        assert_eq!(s.memory().vram, None);
        assert_eq!(s.used_memory(), 8);
        s.gpus = vec![
            Gpu {
                name: "a".into(),
                vram_total: 4,
                vram_used: 0,
                source: "x".into(),
            },
            Gpu {
                name: "b".into(),
                vram_total: 6,
                vram_used: 0,
                source: "x".into(),
            },
        ];
        assert_eq!(s.memory().vram, Some(10));
        s.unified_memory = true;
        assert_eq!(s.memory().vram, None);
    }
}
