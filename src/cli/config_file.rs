//! The configuration file and its environment overrides.
//!
//! A TOML file has up to five tables: `[cluster]` (the model, shared by every command),
//! `[daemon]`, `[index]` and `[server]` (read by `clustimage serve`), and `[dups]` (read by
//! `clustimage dups` over folders, and by `clustimage serve`). Any key can be set from the
//! environment as `CLUSTIMAGE__TABLE__KEY`, spelled in any case with `_` for `-`
//! (`CLUSTIMAGE__DAEMON__REFIT_EVERY_S=60`); the value is read as TOML when it parses as
//! such (`4`, `true`, `["/a", "/b"]`) and as a string otherwise. The environment beats
//! the file, and flags beat both. Unknown tables and keys are errors that name them.

use std::path::Path;

use anyhow::{bail, Context};
use serde::Deserialize;

use super::args::ModelArgs;
use super::dups::DupsOptions;
use super::serve::{DaemonArgs, IndexArgs, ServerArgs};

/// The prefix of the variables that override the configuration.
pub const ENV_PREFIX: &str = "CLUSTIMAGE__";

/// Every table of a configuration file, each key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub cluster: ModelArgs,
    #[serde(default)]
    pub daemon: DaemonArgs,
    #[serde(default)]
    pub index: IndexArgs,
    #[serde(default)]
    pub server: ServerArgs,
    #[serde(default)]
    pub dups: DupsOptions,
}

/// Reads the file at `path` (if any) and applies the environment's overrides.
pub fn load(path: Option<&Path>) -> anyhow::Result<ConfigFile> {
    load_with(path, std::env::vars())
}

fn load_with(
    path: Option<&Path>,
    variables: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<ConfigFile> {
    let mut table = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read configuration {}", path.display()))?;
            toml::from_str::<toml::Table>(&text)
                .with_context(|| format!("invalid configuration {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    let overridden = overlay(&mut table, variables)?;
    let source = match (path, overridden.is_empty()) {
        (Some(path), true) => format!("configuration {}", path.display()),
        (Some(path), false) => {
            format!("configuration {} with {}", path.display(), overridden.join(", "))
        }
        (None, _) => format!("configuration from {}", overridden.join(", ")),
    };
    ConfigFile::deserialize(toml::Value::Table(table)).with_context(|| format!("invalid {source}"))
}

/// Sets the keys named by `CLUSTIMAGE__TABLE__KEY` variables; returns their names.
fn overlay(
    table: &mut toml::Table,
    variables: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for (name, value) in variables {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        let parts: Vec<String> =
            rest.split("__").map(|part| part.to_ascii_lowercase().replace('_', "-")).collect();
        let [section, key] = parts.as_slice() else {
            bail!(
                "{name}: expected {ENV_PREFIX}TABLE__KEY, for example {ENV_PREFIX}DAEMON__WORKERS"
            );
        };
        let parsed = toml::from_str::<toml::Table>(&format!("value = {value}"))
            .ok()
            .and_then(|mut parsed| parsed.remove("value"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let entry = table.entry(section.clone()).or_insert_with(|| toml::Table::new().into());
        let Some(section_table) = entry.as_table_mut() else {
            bail!("{name}: [{section}] is not a table in the configuration file");
        };
        section_table.insert(key.clone(), parsed);
        names.push(name);
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>().into_iter()
    }

    #[test]
    fn the_environment_beats_the_file() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("c.toml");
        std::fs::write(&path, "[cluster]\nmethod = \"hog\"\n[daemon]\nworkers = 2\n").unwrap();
        let variables = vars(&[
            ("CLUSTIMAGE__DAEMON__WORKERS", "7"),
            ("CLUSTIMAGE__DAEMON__WATCH", "[\"/a\", \"/b\"]"),
            ("CLUSTIMAGE__CLUSTER__PIXEL_SCALING", "minmax"),
            ("UNRELATED", "x"),
        ]);
        let file = load_with(Some(&path), variables).unwrap();
        assert_eq!(file.daemon.workers, Some(7));
        assert_eq!(file.daemon.watch.len(), 2);
        assert_eq!(file.cluster.method.as_deref(), Some("hog"));
        assert_eq!(file.cluster.pixel_scaling.as_deref(), Some("minmax"));
    }

    #[test]
    fn bad_names_and_values_are_named() {
        let error = load_with(None, vars(&[("CLUSTIMAGE__WORKERS", "2")])).unwrap_err();
        assert!(format!("{error:#}").contains("CLUSTIMAGE__WORKERS"), "{error:#}");
        let error = load_with(None, vars(&[("CLUSTIMAGE__DAEMON__WORKRES", "2")])).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("workres") && message.contains("CLUSTIMAGE__"), "{message}");
        let error = load_with(None, vars(&[("CLUSTIMAGE__DAEMON__WORKERS", "many")])).unwrap_err();
        assert!(format!("{error:#}").contains("workers"), "{error:#}");
    }
}
