//! Configuration: the embedded defaults (`config/primed.toml`), an optional file over them,
//! and the per-user default paths for the socket and the data dir.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::logging::LogFormat;
use crate::retention::Retention;
use crate::supervision::{BackoffPolicy, Intensity};
use crate::tree::{POOL, ROOT, TESTER_SUPERVISOR};

const DEFAULTS: &str = include_str!("../config/primed.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub daemon: DaemonConfig,
    pub pool: PoolConfig,
    pub limits: LimitsConfig,
    pub journal: JournalConfig,
    pub supervision: SupervisionConfig,
    pub retention: RetentionConfig,
    pub alarms: AlarmsConfig,
    pub faults: FaultsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmsConfig {
    pub big_job_digits: u64,
    pub backlog: u64,
    pub restart_storm: u64,
    pub disk_free_mb: u64,
    pub check_interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    pub socket: Option<PathBuf>,
    pub socket_group: Option<String>,
    pub http_socket: Option<PathBuf>,
    pub http_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub shutdown_grace_secs: f64,
    pub log_format: LogFormat,
    pub log_level: String,
    pub log_file: Option<PathBuf>,
    pub log_max_files: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub testers: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_in_flight: u64,
    pub min_free_disk_mb: u64,
    pub max_digits: usize,
    pub max_frame_bytes: usize,
    pub max_outstanding_per_connection: usize,
    pub max_connections: usize,
    pub read_timeout_secs: f64,
    pub idle_timeout_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub backend: String,
    pub lease_ttl_secs: u64,
    pub compact_secs: f64,
    pub cache_capacity_mb: u64,
    pub max_events: u64,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    pub answers_secs: f64,
    pub failures_secs: f64,
    pub max_kept: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    pub max_restarts: u32,
    pub period_secs: f64,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
    pub backoff_reset_secs: f64,
    pub max_attempts: u32,
    pub root: Option<IntensityConfig>,
    pub tester_supervisor: Option<IntensityConfig>,
    pub pool: Option<IntensityConfig>,
}

/// One supervisor's own restart intensity.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntensityConfig {
    pub max_restarts: u32,
    pub period_secs: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsConfig {
    pub panic_on: Vec<String>,
    pub fail_restart: Vec<String>,
}

/// The number of testers for `pool.testers` (or `--testers`): 0 means one per core.
pub fn pool_size(requested: u32) -> anyhow::Result<u32> {
    let max = crate::pool::MAX_TESTERS;
    match requested {
        0 => Ok(std::thread::available_parallelism().map_or(1, |n| n.get() as u32)),
        n if n > max => bail!("pool.testers is {n}, over the maximum of {max}"),
        n => Ok(n),
    }
}

impl Config {
    /// The embedded defaults, with `file` (if any) laid over them key by key.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut table: toml::Table = DEFAULTS.parse().context("embedded default configuration")?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let overlay: toml::Table = text
                .parse()
                .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
            merge(&mut table, overlay);
        }
        let config: Config = table.try_into().with_context(|| match file {
            Some(path) => format!("invalid configuration in {}", path.display()),
            None => "invalid embedded configuration".to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if self.limits.max_digits == 0 {
            bail!("limits.max_digits must be at least 1");
        }
        crate::logging::parse_level(&self.daemon.log_level)?;
        if self.alarms.check_interval_ms == 0 {
            bail!("alarms.check_interval_ms must be at least 1");
        }
        if !(1024..=1 << 30).contains(&self.limits.max_frame_bytes) {
            bail!("limits.max_frame_bytes must be from 1024 to 1073741824");
        }
        if let Some(addr) = &self.daemon.http_listen {
            http_listen(addr)?;
        }
        if self.limits.max_connections == 0 {
            bail!("limits.max_connections must be at least 1");
        }
        seconds("limits.read_timeout_secs", self.limits.read_timeout_secs)?;
        seconds("limits.idle_timeout_secs", self.limits.idle_timeout_secs)?;
        if self.limits.max_outstanding_per_connection < crate::protocol::MAX_BATCH {
            bail!(
                "limits.max_outstanding_per_connection must be at least {}",
                crate::protocol::MAX_BATCH
            );
        }
        let supervision = &self.supervision;
        seconds("supervision.period_secs", supervision.period_secs)?;
        seconds(
            "supervision.backoff_reset_secs",
            supervision.backoff_reset_secs,
        )?;
        seconds(
            "daemon.shutdown_grace_secs",
            self.daemon.shutdown_grace_secs,
        )?;
        for (name, own) in self.own_intensities() {
            if let Some(own) = own {
                seconds(&format!("supervision.{name}.period_secs"), own.period_secs)?;
            }
        }
        if supervision.max_attempts == 0 {
            bail!("supervision.max_attempts must be at least 1");
        }
        if supervision.backoff_initial_ms > supervision.backoff_max_ms {
            bail!("supervision.backoff_initial_ms must not exceed supervision.backoff_max_ms");
        }
        if self.daemon.log_max_files == 0 {
            bail!("daemon.log_max_files must be at least 1");
        }
        if self.limits.max_in_flight == 0 {
            bail!("limits.max_in_flight must be at least 1");
        }
        seconds("journal.compact_secs", self.journal.compact_secs)?;
        if self.journal.compact_secs < 0.1 {
            bail!("journal.compact_secs must be at least 0.1");
        }
        if self.journal.max_events == 0 {
            bail!("journal.max_events must be at least 1");
        }
        seconds("retention.answers_secs", self.retention.answers_secs)?;
        seconds("retention.failures_secs", self.retention.failures_secs)?;
        self.retention().validate().map_err(anyhow::Error::msg)?;
        Ok(())
    }

    fn own_intensities(&self) -> [(&'static str, Option<IntensityConfig>); 3] {
        let s = &self.supervision;
        [
            (ROOT, s.root),
            (TESTER_SUPERVISOR, s.tester_supervisor),
            (POOL, s.pool),
        ]
    }

    /// The restart intensity of supervisor `name`: its own table, or the common keys.
    pub fn intensity(&self, name: &str) -> Intensity {
        let common = IntensityConfig {
            max_restarts: self.supervision.max_restarts,
            period_secs: self.supervision.period_secs,
        };
        let own = self
            .own_intensities()
            .into_iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, own)| own);
        let chosen = own.unwrap_or(common);
        Intensity {
            max_restarts: chosen.max_restarts,
            period: secs(chosen.period_secs),
        }
    }

    pub fn backoff(&self) -> BackoffPolicy {
        let s = &self.supervision;
        BackoffPolicy {
            initial: Duration::from_millis(s.backoff_initial_ms),
            max: Duration::from_millis(s.backoff_max_ms),
            reset_after: secs(s.backoff_reset_secs),
        }
    }

    pub fn retention(&self) -> Retention {
        let r = &self.retention;
        Retention {
            answers: secs(r.answers_secs),
            failures: secs(r.failures_secs),
            max_kept: r.max_kept,
        }
    }

    pub fn shutdown_grace(&self) -> Duration {
        secs(self.daemon.shutdown_grace_secs)
    }
}

/// Validated by [`seconds`] before use; saturates rather than panics regardless.
pub fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX)
}

fn seconds(key: &str, value: f64) -> anyhow::Result<()> {
    if !(value > 0.0 && Duration::try_from_secs_f64(value).is_ok()) {
        bail!("{key} must be a positive number of seconds, got {value}");
    }
    Ok(())
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(inner)), toml::Value::Table(over)) => merge(inner, over),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

fn env_dir(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Where `serve` listens and clients connect when neither --socket nor PRIMED_SOCKET says.
/// A `daemon.http_listen` / `--http-listen` address.
pub fn http_listen(addr: &str) -> anyhow::Result<std::net::SocketAddr> {
    addr.parse().map_err(|e| {
        anyhow::anyhow!("daemon.http_listen must be an address and port such as 127.0.0.1:8787, not {addr:?}: {e}")
    })
}

/// The HTTP API's socket beside the CLI's: `primed.sock` → `primed.http.sock`. An empty path
/// (configured) turns it off.
pub fn http_socket(configured: Option<PathBuf>, cli_socket: &std::path::Path) -> Option<PathBuf> {
    match configured {
        Some(path) if path.as_os_str().is_empty() => None,
        Some(path) => Some(path),
        None => {
            let stem = cli_socket
                .file_stem()
                .map_or_else(|| "primed".into(), |s| s.to_string_lossy().into_owned());
            Some(cli_socket.with_file_name(format!("{stem}.http.sock")))
        }
    }
}

pub fn default_socket() -> PathBuf {
    match env_dir("XDG_RUNTIME_DIR") {
        Some(dir) => dir.join("primed").join("primed.sock"),
        None => std::env::temp_dir()
            .join(format!("primed-{}", uid()))
            .join("primed.sock"),
    }
}

pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = env_dir("XDG_DATA_HOME") {
        return dir.join("primed");
    }
    match env_dir("HOME") {
        Some(home) => home.join(".local").join("share").join("primed"),
        None => std::env::temp_dir()
            .join(format!("primed-{}", uid()))
            .join("data"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_and_validate() {
        let config = Config::load(None).unwrap();
        assert_eq!(config.limits.max_digits, 10_000);
        assert_eq!(config.daemon.log_format, LogFormat::Pretty);
        assert_eq!(config.pool.testers, 0);
    }

    #[test]
    fn a_file_overrides_only_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("primed.toml");
        std::fs::write(&path, "[pool]\ntesters = 3\n[limits]\nmax_digits = 50\n").unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.pool.testers, 3);
        assert_eq!(config.limits.max_digits, 50);
        assert_eq!(config.limits.max_frame_bytes, 16 << 20);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("primed.toml");
        std::fs::write(&path, "[pool]\ntesterz = 3\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("testerz"), "{err}");
        std::fs::write(&path, "[limits]\nmax_digits = 0\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("max_digits"), "{err}");
        std::fs::write(
            &path,
            "[supervision.pool]\nmax_restarts = 1\nperiod_secs = -1\n",
        )
        .unwrap();
        let err = format!("{:#}", Config::load(Some(&path)).unwrap_err());
        assert!(err.contains("supervision.pool.period_secs"), "{err}");
    }

    #[test]
    fn a_supervisor_may_have_its_own_intensity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("primed.toml");
        let text = "[supervision]\nmax_restarts = 7\n[supervision.pool]\nmax_restarts = 2\nperiod_secs = 1\n";
        std::fs::write(&path, text).unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.intensity(POOL).max_restarts, 2);
        assert_eq!(config.intensity(POOL).period, Duration::from_secs(1));
        assert_eq!(config.intensity(ROOT).max_restarts, 7);
        assert_eq!(config.intensity(ROOT).period, Duration::from_secs(10));
    }
}
