//! The machine's heat, read by coworkd and reported to agents-agent, which
//! acts on it (seed 003 "Thermal Management"). Pure: [`classify`], the
//! level of Linux thermal zones against their trip points, with
//! hysteresis; [`ppd_level`]. Runtime: [`spawn`], the poll, with the
//! platform's own word where it has one (power-profiles-daemon on Linux;
//! macOS's `ProcessInfo.thermalState` behind `cfg`, not compiled here).

use crate::config::ThermalConfig;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A level, ordered from cool to very hot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Cool.
    Nominal,
    /// Within 10 °C of a passive trip point.
    Fair,
    /// At or past a passive (throttling) trip point.
    Serious,
    /// At or past a hot or critical trip point.
    Critical,
}

impl Level {
    /// Its name (`cowork.thermal.v1.Reading.level`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Nominal => "nominal",
            Self::Fair => "fair",
            Self::Serious => "serious",
            Self::Critical => "critical",
        }
    }
}

/// One zone: its temperature and trip points (m°C, with their type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// `thermal_zone0`.
    pub name: String,
    /// Now (m°C).
    pub temp: i64,
    /// (type, m°C): passive, active, hot, critical.
    pub trips: Vec<(String, i64)>,
}

/// The level one zone is at: `previous` holds while the zone has not
/// cooled `hysteresis` (m°C) below the trip point it passed.
fn zone_level(z: &Zone, previous: Level, hysteresis: i64) -> Level {
    let at = |t: i64, margin: i64| z.temp >= t - margin;
    let trip = |kinds: &[&str]| {
        z.trips
            .iter()
            .filter(|(k, _)| kinds.contains(&k.as_str()))
            .map(|(_, t)| *t)
            .filter(|t| *t > 0)
            .min()
    };
    let margin = |l: Level| if previous >= l { hysteresis } else { 0 };
    if trip(&["hot", "critical"]).is_some_and(|t| at(t, margin(Level::Critical))) {
        return Level::Critical;
    }
    if let Some(p) = trip(&["passive"]) {
        if at(p, margin(Level::Serious)) {
            return Level::Serious;
        }
        if at(p - 10_000, margin(Level::Fair)) {
            return Level::Fair;
        }
    }
    Level::Nominal
}

/// The machine's level: its hottest zone's.
pub fn classify(zones: &[Zone], previous: Level, hysteresis: i64) -> Level {
    zones
        .iter()
        .map(|z| zone_level(z, previous, hysteresis))
        .max()
        .unwrap_or(Level::Nominal)
}

/// The level power-profiles-daemon's `PerformanceDegraded` says: its
/// "high-operating-temperature" is serious (it is already throttling);
/// empty or any other reason (a lap detected) says nothing about heat.
pub fn ppd_level(degraded: &str) -> Level {
    if degraded
        .split(',')
        .any(|r| r.trim() == "high-operating-temperature")
    {
        Level::Serious
    } else {
        Level::Nominal
    }
}

/// power-profiles-daemon on the system bus, where present (its newer name
/// first, then the one Debian 12's 0.12 uses).
#[cfg(all(unix, not(target_os = "macos")))]
struct Ppd {
    conn: Option<zbus::Connection>,
}

#[cfg(all(unix, not(target_os = "macos")))]
impl Ppd {
    /// `PerformanceDegraded`, or why it cannot be read.
    async fn degraded(&mut self) -> Result<String, String> {
        if self.conn.is_none() {
            let c = tokio::time::timeout(Duration::from_secs(3), zbus::Connection::system())
                .await
                .map_err(|_| "the system bus did not answer".to_string())?
                .map_err(|e| format!("no system bus: {e}"))?;
            self.conn = Some(c);
        }
        let conn = self.conn.as_ref().ok_or("no system bus")?;
        let mut last = String::new();
        for (name, path) in [
            (
                "org.freedesktop.UPower.PowerProfiles",
                "/org/freedesktop/UPower/PowerProfiles",
            ),
            ("net.hadess.PowerProfiles", "/net/hadess/PowerProfiles"),
        ] {
            let read = async {
                let p = zbus::Proxy::new(conn, name, path, name).await?;
                p.get_property::<String>("PerformanceDegraded").await
            };
            match tokio::time::timeout(Duration::from_secs(3), read).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = format!("{name} did not answer"),
            }
        }
        Err(format!("power-profiles-daemon is not running ({last})"))
    }
}

/// Read every `thermal_zone*` under `root` that has trip points.
pub fn read_zones(root: &Path) -> Result<Vec<Zone>, String> {
    let entries = std::fs::read_dir(root).map_err(|e| format!("{}: {e}", root.display()))?;
    let num = |p: &Path| -> Option<i64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let mut zones = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("thermal_zone") {
            continue;
        }
        let dir = e.path();
        let Some(temp) = num(&dir.join("temp")) else {
            continue;
        };
        let mut trips = Vec::new();
        for i in 0..32 {
            let Some(t) = num(&dir.join(format!("trip_point_{i}_temp"))) else {
                break;
            };
            let kind = std::fs::read_to_string(dir.join(format!("trip_point_{i}_type")))
                .unwrap_or_default()
                .trim()
                .to_owned();
            trips.push((kind, t));
        }
        if !trips.is_empty() {
            zones.push(Zone { name, temp, trips });
        }
    }
    zones.sort_by(|a, b| a.name.cmp(&b.name));
    if zones.is_empty() {
        return Err(format!(
            "no thermal zone with trip points under {}",
            root.display()
        ));
    }
    Ok(zones)
}

/// What `status` shows: the last level, or why there is none.
pub type Reading = Arc<Mutex<String>>;

/// Poll every `interval_s` and report each reading to agents-agent (at
/// `agents_socket`); agents-agent acts on changes only.
pub fn spawn(
    cfg: ThermalConfig,
    agents_socket: std::path::PathBuf,
    shutdown: tokio_util::sync::CancellationToken,
) -> Reading {
    let reading: Reading = Arc::new(Mutex::new("unknown: not read yet".into()));
    if !cfg.enabled {
        if let Ok(mut r) = reading.lock() {
            *r = "unknown: [thermal] enabled = false".into();
        }
        return reading;
    }
    let out = reading.clone();
    tokio::spawn(async move {
        let mut reader = Reader::new(cfg.power_profiles);
        loop {
            let (level, text, source) = reader.read(&cfg).await;
            if let Ok(mut r) = out.lock() {
                *r = text;
            }
            if let (Some(level), Some(source)) = (level, source) {
                report(&agents_socket, level, source).await;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(cfg.interval_s)) => {}
            }
        }
    });
    reading
}

/// One reading after another: the zones (with hysteresis against the last
/// level) and, where it runs, power-profiles-daemon; the hotter wins.
struct Reader {
    level: Level,
    #[cfg(all(unix, not(target_os = "macos")))]
    ppd: Option<Ppd>,
}

impl Reader {
    fn new(power_profiles: bool) -> Self {
        #[cfg(not(all(unix, not(target_os = "macos"))))]
        let _ = power_profiles;
        Self {
            level: Level::Nominal,
            #[cfg(all(unix, not(target_os = "macos")))]
            ppd: power_profiles.then_some(Ppd { conn: None }),
        }
    }

    /// The platform's own word on the heat, where it has one: Linux's
    /// power-profiles-daemon, macOS's `ProcessInfo.thermalState`.
    #[cfg(all(unix, not(target_os = "macos")))]
    async fn platform(&mut self) -> Option<(Level, String)> {
        let d = self.ppd.as_mut()?.degraded().await.ok()?;
        let words = if d.is_empty() {
            "not degraded"
        } else {
            d.as_str()
        };
        Some((ppd_level(&d), format!("power-profiles-daemon: {words}")))
    }

    #[cfg(target_os = "macos")]
    async fn platform(&mut self) -> Option<(Level, String)> {
        use objc2_foundation::{NSProcessInfo, NSProcessInfoThermalState as S};
        let state = NSProcessInfo::processInfo().thermalState();
        let level = if state == S::Critical {
            Level::Critical
        } else if state == S::Serious {
            Level::Serious
        } else if state == S::Fair {
            Level::Fair
        } else {
            Level::Nominal
        };
        Some((level, format!("macOS: {}", level.name())))
    }

    #[cfg(not(unix))]
    async fn platform(&mut self) -> Option<(Level, String)> {
        None
    }

    /// The level (None: nothing could be read), what `status` shows, and
    /// the source in words.
    async fn read(&mut self, cfg: &ThermalConfig) -> (Option<Level>, String, Option<String>) {
        let zones = read_zones(&cfg.sysfs_root);
        let hysteresis = (cfg.hysteresis_c * 1000.0) as i64;
        let mut parts = Vec::new();
        let zl = match &zones {
            Ok(z) => {
                if let Some(h) = z.iter().max_by_key(|z| z.temp) {
                    parts.push(format!("{} {:.1} °C", h.name, h.temp as f64 / 1000.0));
                }
                Some(classify(z, self.level, hysteresis))
            }
            Err(_) => None,
        };
        let pl = self.platform().await.map(|(l, words)| {
            parts.push(words);
            l
        });
        match (zl, pl, zones) {
            (None, None, Err(e)) => (None, format!("unknown: {e}"), None),
            (zl, pl, _) => {
                self.level = zl
                    .unwrap_or(Level::Nominal)
                    .max(pl.unwrap_or(Level::Nominal));
                (
                    Some(self.level),
                    self.level.name().into(),
                    Some(parts.join("; ")),
                )
            }
        }
    }
}

async fn report(socket: &Path, level: Level, source: String) {
    use cowork_proto::pb::thermal::{thermal_client::ThermalClient, Reading};
    let r = async {
        let ch = cowork_proto::uds::connect(socket)
            .await
            .map_err(|e| e.to_string())?;
        let mut req = tonic::Request::new(Reading {
            level: level.name().into(),
            source,
        });
        req.set_timeout(Duration::from_secs(20));
        ThermalClient::new(ch)
            .report(req)
            .await
            .map_err(|e| e.message().to_string())
    }
    .await;
    if let Err(e) = r {
        // agents-agent is restarting: the next poll reports again.
        tracing::debug!(error = %e, "the heat reading did not reach agents-agent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(temp: i64) -> Zone {
        Zone {
            name: "thermal_zone0".into(),
            temp,
            trips: vec![("passive".into(), 80_000), ("critical".into(), 100_000)],
        }
    }

    #[test]
    fn trip_points_give_levels() {
        assert_eq!(
            classify(&[zone(50_000)], Level::Nominal, 3000),
            Level::Nominal
        );
        assert_eq!(classify(&[zone(72_000)], Level::Nominal, 3000), Level::Fair);
        assert_eq!(
            classify(&[zone(80_000)], Level::Nominal, 3000),
            Level::Serious
        );
        assert_eq!(
            classify(&[zone(101_000)], Level::Nominal, 3000),
            Level::Critical
        );
        // The hottest zone decides.
        assert_eq!(
            classify(&[zone(50_000), zone(85_000)], Level::Nominal, 3000),
            Level::Serious
        );
        assert_eq!(classify(&[], Level::Serious, 3000), Level::Nominal);
    }

    #[test]
    fn a_reading_flapping_at_a_trip_point_does_not_toggle() {
        let mut l = Level::Nominal;
        let mut changes = 0;
        for t in [80_100, 79_900, 80_050, 78_500, 80_000, 77_100] {
            let n = classify(&[zone(t)], l, 3000);
            changes += (n != l) as u32;
            l = n;
        }
        assert_eq!((l, changes), (Level::Serious, 1));
        // Cooled past the margin: down it goes.
        assert_eq!(classify(&[zone(76_900)], l, 3000), Level::Fair);
    }

    #[test]
    fn power_profiles_daemon_degraded_by_heat_is_serious() {
        assert_eq!(ppd_level(""), Level::Nominal);
        assert_eq!(ppd_level("lap-detected"), Level::Nominal);
        assert_eq!(ppd_level("high-operating-temperature"), Level::Serious);
        assert_eq!(
            ppd_level("lap-detected,high-operating-temperature"),
            Level::Serious
        );
    }

    #[test]
    fn zones_are_read_from_a_sysfs_root() {
        let d = tempfile::tempdir().unwrap();
        let z = d.path().join("thermal_zone3");
        std::fs::create_dir(&z).unwrap();
        std::fs::write(z.join("temp"), "90000\n").unwrap();
        std::fs::write(z.join("trip_point_0_temp"), "85000\n").unwrap();
        std::fs::write(z.join("trip_point_0_type"), "passive\n").unwrap();
        std::fs::create_dir(d.path().join("cooling_device0")).unwrap();
        let zones = read_zones(d.path()).unwrap();
        assert_eq!(zones.len(), 1);
        assert_eq!(classify(&zones, Level::Nominal, 3000), Level::Serious);
        assert!(read_zones(&d.path().join("none")).is_err());
    }
}
