//! The daemon's validated settings.
//!
//! The command line builds a [`DaemonConfig`] from the configuration file, the
//! environment and its flags, then calls [`DaemonConfig::validate`]; the daemon trusts it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::dedup::{MatchKind, MatchParams};
use crate::features::FeatureParams;
use crate::imaging::{LoadLimits, Preprocessing};
use crate::index::IndexParams;
use crate::model::FitParams;

/// Everything `clustimage serve` needs to run.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// The folders watched, made absolute.
    pub roots: Vec<PathBuf>,
    /// Where the store, the model and the index live.
    pub data_dir: PathBuf,
    /// The gRPC address.
    pub listen: SocketAddr,
    /// Files read and decoded at once.
    pub workers: usize,
    /// Follow symbolic links while walking and watching.
    pub follow_symlinks: bool,
    /// How long a path must be quiet after its last event before it is read.
    pub quiet: Duration,
    /// A file still open for writing is read anyway once it has been quiet this long.
    pub write_timeout: Duration,
    /// How often every root is walked again to catch missed events.
    pub reconcile_every: Duration,
    /// How often the model is refitted when something changed.
    pub refit_every: Duration,
    /// Refit as soon as this many distinct images were added or removed.
    pub refit_after_changes: u64,
    /// No model is fitted on fewer images than this.
    pub min_images: usize,
    pub preprocessing: Preprocessing,
    pub limits: LoadLimits,
    pub features: FeatureParams,
    pub fit: FitParams,
    pub index: IndexParams,
    /// The thresholds of the duplicate kinds (the `[dups]` table).
    pub dups: MatchParams,
    /// What is done with arriving duplicates, by kind.
    pub dup_actions: DupActions,
}

/// What the daemon does with a file that arrives as a duplicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    /// Log it and announce it; touch nothing.
    #[default]
    Report,
    /// Move it into the quarantine (never the suggested keeper).
    Move,
    /// Replace it by a hard link to the keeper: exact copies only, on one filesystem.
    Hardlink,
}

impl Action {
    pub fn from_name(name: &str) -> Option<Action> {
        match name.to_ascii_lowercase().as_str() {
            "report" => Some(Action::Report),
            "move" => Some(Action::Move),
            "hardlink" => Some(Action::Hardlink),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Action::Report => "report",
            Action::Move => "move",
            Action::Hardlink => "hardlink",
        }
    }
}

/// The action of each kind, and the quarantine that `move` uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DupActions {
    pub exact: Action,
    pub duplicate: Action,
    pub similar: Action,
    /// Absolute; required when any action is `move` or `hardlink` (which records there).
    pub quarantine: Option<PathBuf>,
}

impl DupActions {
    pub fn of(&self, kind: MatchKind) -> Action {
        match kind {
            MatchKind::Exact => self.exact,
            MatchKind::Duplicate => self.duplicate,
            MatchKind::Similar => self.similar,
        }
    }

    /// True when some kind is acted on.
    pub fn any(&self) -> bool {
        MatchKind::ALL.iter().any(|kind| self.of(*kind) != Action::Report)
    }
}

impl DaemonConfig {
    /// Settings for `roots` and `data_dir` with every other value at its default.
    pub fn new(roots: Vec<PathBuf>, data_dir: PathBuf) -> DaemonConfig {
        DaemonConfig {
            roots,
            data_dir,
            listen: SocketAddr::from(([127, 0, 0, 1], 50551)),
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            follow_symlinks: false,
            quiet: Duration::from_millis(500),
            write_timeout: Duration::from_secs(60),
            reconcile_every: Duration::from_secs(3600),
            refit_every: Duration::from_secs(600),
            refit_after_changes: 1000,
            min_images: 10,
            preprocessing: Preprocessing::default(),
            limits: LoadLimits::default(),
            features: FeatureParams::default(),
            fit: FitParams::default(),
            index: IndexParams::default(),
            dups: MatchParams::default(),
            dup_actions: DupActions::default(),
        }
    }

    /// Checks the settings, naming the first bad key as it is spelled in the
    /// configuration file's `[daemon]` table.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, message: String| Err(ConfigError { key, message });
        if self.roots.is_empty() {
            return invalid("watch", "no folder to watch: give --watch DIR".into());
        }
        for root in &self.roots {
            if !root.is_absolute() {
                return invalid("watch", format!("{} is not an absolute path", root.display()));
            }
            if root.starts_with(&self.data_dir) || self.data_dir.starts_with(root) {
                let message = format!(
                    "{} and the data folder {} must not contain each other",
                    root.display(),
                    self.data_dir.display()
                );
                return invalid("watch", message);
            }
        }
        if self.workers == 0 || self.workers > 1024 {
            return invalid("workers", format!("{} is not in 1..=1024", self.workers));
        }
        if self.quiet > Duration::from_secs(60) {
            return invalid("quiet-ms", "must be at most 60000".into());
        }
        if self.write_timeout < self.quiet {
            return invalid("write-timeout-s", "must be at least quiet-ms".into());
        }
        for (key, period) in
            [("reconcile-every-s", self.reconcile_every), ("refit-every-s", self.refit_every)]
        {
            if period < Duration::from_secs(1) {
                return invalid(key, "must be at least 1 second".into());
            }
        }
        if self.refit_after_changes == 0 {
            return invalid("refit-after-changes", "must be at least 1".into());
        }
        if self.min_images < 3 {
            return invalid("min-images", format!("{} is below 3", self.min_images));
        }
        if self.features.method.uses_exif() {
            let message = format!(
                "{} clusters EXIF fields and has no feature vector to index; the daemon needs \
                 pca, hog, pca-hog, pixels or a hash",
                self.features.method.name()
            );
            return Err(ConfigError { key: "method", message });
        }
        self.index
            .validate()
            .map_err(|error| ConfigError { key: "index", message: error.to_string() })?;
        self.validate_actions()
    }

    fn validate_actions(&self) -> Result<(), ConfigError> {
        let actions = &self.dup_actions;
        for (key, kind) in
            [("action-duplicate", MatchKind::Duplicate), ("action-similar", MatchKind::Similar)]
        {
            if actions.of(kind) == Action::Hardlink {
                let message = "hardlink is for exact copies only (action-exact); a duplicate \
                               has other bytes"
                    .to_string();
                return Err(ConfigError { key, message });
            }
        }
        let Some(quarantine) = &actions.quarantine else {
            if actions.any() {
                let message = "an action other than report needs a quarantine folder, where \
                               moved files and the manifest of every action go"
                    .to_string();
                return Err(ConfigError { key: "quarantine", message });
            }
            return Ok(());
        };
        if !quarantine.is_absolute() {
            let message = format!("{} is not an absolute path", quarantine.display());
            return Err(ConfigError { key: "quarantine", message });
        }
        for root in &self.roots {
            if quarantine.starts_with(root) || root.starts_with(quarantine) {
                let message = format!(
                    "{} and the watched folder {} must not contain each other",
                    quarantine.display(),
                    root.display()
                );
                return Err(ConfigError { key: "quarantine", message });
            }
        }
        Ok(())
    }
}

/// A setting that cannot be used, named by its key.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    pub key: &'static str,
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DaemonConfig {
        DaemonConfig::new(vec!["/photos".into()], "/var/lib/clustimage".into())
    }

    #[test]
    fn defaults_are_valid() {
        config().validate().unwrap();
    }

    #[test]
    fn duplicate_actions_need_a_quarantine_outside_the_roots() {
        let with = |edit: fn(&mut DupActions)| {
            let mut config = config();
            edit(&mut config.dup_actions);
            config.validate().map_err(|error| error.key)
        };
        assert_eq!(with(|a| a.duplicate = Action::Move), Err("quarantine"));
        assert_eq!(
            with(|a| {
                a.duplicate = Action::Move;
                a.quarantine = Some("/photos/.quarantine".into());
            }),
            Err("quarantine")
        );
        assert_eq!(
            with(|a| {
                a.duplicate = Action::Hardlink;
                a.quarantine = Some("/var/quarantine".into());
            }),
            Err("action-duplicate")
        );
        let valid = with(|a| {
            a.exact = Action::Hardlink;
            a.duplicate = Action::Move;
            a.quarantine = Some("/var/quarantine".into());
        });
        assert_eq!(valid, Ok(()));
    }

    #[test]
    fn bad_values_name_their_key() {
        type Change = Box<dyn Fn(&mut DaemonConfig)>;
        let cases: Vec<(&str, Change)> = vec![
            ("watch", Box::new(|c| c.roots.clear())),
            ("watch", Box::new(|c| c.roots = vec!["relative".into()])),
            ("watch", Box::new(|c| c.data_dir = "/photos/.clustimage".into())),
            ("workers", Box::new(|c| c.workers = 0)),
            ("refit-every-s", Box::new(|c| c.refit_every = Duration::ZERO)),
            ("refit-after-changes", Box::new(|c| c.refit_after_changes = 0)),
            ("write-timeout-s", Box::new(|c| c.write_timeout = Duration::from_millis(1))),
            ("method", Box::new(|c| c.features.method = crate::features::FeatureMethod::ExifGps)),
        ];
        for (key, change) in cases {
            let mut config = config();
            change(&mut config);
            let error = config.validate().unwrap_err();
            assert_eq!(error.key, key, "{error}");
        }
    }
}
