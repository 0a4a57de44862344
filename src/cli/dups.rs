//! `clustimage dups`: find exact copies, duplicates and similar images under folders,
//! without a daemon, and suggest which copy of each group to keep.
//!
//! Every image is read once on all cores (content hash, thumbnail, signature); then the
//! images are taken in path order, each checked against those before it in a
//! [`DuplicateIndex`] and inserted, as the daemon does with arriving files. Nothing is
//! moved or deleted.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{progress, table};
use crate::batch::Skipped;
use crate::cancel::CancelToken;
use crate::daemon::{Action, DupActions};
use crate::dedup::{self, DuplicateIndex, FileFacts, Link, MatchKind, MatchParams, Signature};
use crate::imaging::{self, LoadLimits, Preprocessing};

#[derive(Debug, Args)]
pub struct DupsArgs {
    /// Folders (searched recursively) or image files; none asks the running daemon.
    #[arg(value_name = "DIR")]
    pub inputs: Vec<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub options: DupsOptions,
}

/// The options of `dups`, each optional: a flag beats the `[dups]` table of `--config`,
/// which beats the default.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DupsOptions {
    /// Read defaults from a TOML file ([dups]).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// The weakest kind of match reported: exact, duplicate (also exact) or similar (all)
    /// [default: duplicate].
    #[arg(long)]
    pub kind: Option<String>,
    /// Largest Hamming distance (of 64 bits) of a duplicate [default: 10].
    #[arg(long, value_name = "BITS")]
    pub duplicate_max_distance: Option<u32>,
    /// Largest Hamming distance of a similar image [default: 16].
    #[arg(long, value_name = "BITS")]
    pub similar_max_distance: Option<u32>,
    /// Whether mirrored and turned copies are duplicates [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub geometric: Option<bool>,
    /// What the daemon does with an arriving exact copy: `report` (the default), `move`
    /// (into the quarantine) or `hardlink` (a link to the keeper). Configuration only.
    #[arg(skip)]
    pub action_exact: Option<String>,
    /// The same for duplicates: `report` or `move`.
    #[arg(skip)]
    pub action_duplicate: Option<String>,
    /// The same for similar images: `report` or `move`.
    #[arg(skip)]
    pub action_similar: Option<String>,
    /// Where moved files go: a folder outside every watched folder.
    #[arg(skip)]
    pub quarantine: Option<PathBuf>,
}

impl DupsOptions {
    /// The flags that only a run over folders uses, by name, when any is given.
    pub fn folder_only_flags(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        if self.config.is_some() {
            given.push("--config");
        }
        if self.duplicate_max_distance.is_some() {
            given.push("--duplicate-max-distance");
        }
        if self.similar_max_distance.is_some() {
            given.push("--similar-max-distance");
        }
        if self.geometric.is_some() {
            given.push("--geometric");
        }
        given
    }
}

impl DupsOptions {
    /// The daemon's actions, from the `[dups]` table.
    pub fn actions(&self) -> Result<DupActions> {
        let parse = |key: &str, value: &Option<String>| -> Result<Action> {
            let name = value.as_deref().unwrap_or("report");
            Action::from_name(name).ok_or_else(|| {
                anyhow::anyhow!("{key}: unknown value {name:?}, expected report, move or hardlink")
            })
        };
        Ok(DupActions {
            exact: parse("action-exact", &self.action_exact)?,
            duplicate: parse("action-duplicate", &self.action_duplicate)?,
            similar: parse("action-similar", &self.action_similar)?,
            quarantine: self.quarantine.clone(),
        })
    }
}

/// The weakest kind asked for by `--kind` (or the `kind` key); `duplicate` by default.
pub fn parse_kind(name: Option<&str>) -> Result<MatchKind> {
    let name = name.unwrap_or("duplicate");
    MatchKind::from_name(name).ok_or_else(|| {
        anyhow::anyhow!("--kind: unknown value {name:?}, expected one of exact, duplicate, similar")
    })
}

/// Validated `dups` settings.
#[derive(Debug, Clone, Copy)]
pub struct DupsSettings {
    pub kind: MatchKind,
    pub params: MatchParams,
}

impl DupsOptions {
    pub fn settings(&self) -> Result<DupsSettings> {
        let file = super::config_file::load(self.config.as_deref())?;
        let fallback = file.dups;
        let kind = parse_kind(self.kind.as_deref().or(fallback.kind.as_deref()))?;
        let defaults = MatchParams::default();
        let params = MatchParams::new(
            self.duplicate_max_distance
                .or(fallback.duplicate_max_distance)
                .unwrap_or(defaults.duplicate_max_distance()),
            self.similar_max_distance
                .or(fallback.similar_max_distance)
                .unwrap_or(defaults.similar_max_distance()),
            self.geometric.or(fallback.geometric).unwrap_or(defaults.geometric()),
        )?;
        Ok(DupsSettings { kind, params })
    }
}

/// The published result; `--json` prints it.
#[derive(Debug, Serialize)]
pub struct DupsResult {
    pub n_images: usize,
    pub n_skipped: usize,
    pub skipped: Vec<Skipped>,
    pub kind: MatchKind,
    pub duplicate_max_distance: u32,
    pub similar_max_distance: u32,
    pub geometric: bool,
    pub groups: Vec<GroupSummary>,
}

#[derive(Debug, Serialize)]
pub struct GroupSummary {
    /// The weakest kind among the group's pairs.
    pub kind: MatchKind,
    /// Members, the keeper first, then in path order.
    pub paths: Vec<PathBuf>,
    pub keeper: PathBuf,
    pub max_distance: u32,
    /// The matching pairs that join the group.
    pub pairs: Vec<PairSummary>,
}

#[derive(Debug, Serialize)]
pub struct PairSummary {
    pub a: PathBuf,
    pub b: PathBuf,
    pub kind: MatchKind,
    pub distance: u32,
}

/// One image as read.
struct Described {
    content: [u8; 32],
    signature: Signature,
    facts: FileFacts,
}

pub fn run(args: &DupsArgs, cancel: &CancelToken) -> Result<()> {
    let settings = args.options.settings()?;
    let found = imaging::find_images(&args.inputs)?;
    for (path, reason) in &found.unreadable {
        tracing::warn!(path = %path.display(), cause = %reason, "cannot list");
    }
    if found.images.is_empty() {
        bail!("no image files (jpg, jpeg, png, webp, tiff, tif, bmp, gif) under the given folders");
    }
    let (described, skipped) = describe_all(&found.images, cancel)?;
    let result = find_groups(described, skipped, &settings);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", summary(&result));
    }
    Ok(())
}

/// Reads every file on all cores; unreadable ones are skipped with a warning.
fn describe_all(paths: &[PathBuf], cancel: &CancelToken) -> Result<(Vec<Described>, Vec<Skipped>)> {
    let bar = progress::bar(paths.len(), "reading");
    let outcomes: Vec<Option<Result<Described, Skipped>>> = paths
        .par_iter()
        .map(|path| {
            if cancel.is_cancelled() {
                return None;
            }
            let outcome = describe(path);
            bar.inc(1);
            Some(outcome)
        })
        .collect();
    bar.finish_and_clear();
    if cancel.is_cancelled() {
        bail!("cancelled");
    }
    let mut described = Vec::with_capacity(paths.len());
    let mut skipped = Vec::new();
    for outcome in outcomes.into_iter().flatten() {
        match outcome {
            Ok(image) => described.push(image),
            Err(skip) => {
                tracing::warn!(path = %skip.path.display(), cause = %skip.reason, "skipped");
                skipped.push(skip);
            }
        }
    }
    Ok((described, skipped))
}

fn describe(path: &Path) -> Result<Described, Skipped> {
    let skip = |reason: String| Skipped { path: path.to_path_buf(), reason };
    let limits = LoadLimits::default();
    let metadata = std::fs::metadata(path)
        .map_err(|error| skip(format!("cannot read {}: {error}", path.display())))?;
    if metadata.len() > limits.max_file_bytes {
        let limit = limits.max_file_bytes;
        return Err(skip(format!("{} is over the limit of {limit} bytes", path.display())));
    }
    let bytes = std::fs::read(path)
        .map_err(|error| skip(format!("cannot read {}: {error}", path.display())))?;
    let loaded = imaging::load_bytes(&bytes, path, &limits, &Preprocessing::default())
        .map_err(|error| skip(error.to_string()))?;
    let signature = dedup::compute_signature(&loaded.gray)
        .map_err(|error| skip(format!("{}: {error}", path.display())))?;
    let format = image::guess_format(&bytes)
        .ok()
        .and_then(|format| format.extensions_str().first().map(|name| name.to_string()));
    let facts = FileFacts {
        path: path.to_path_buf(),
        width_px: loaded.original_width_px,
        height_px: loaded.original_height_px,
        size_bytes: bytes.len() as u64,
        format,
        n_exif_fields: loaded.exif.as_ref().map_or(0, |exif| exif.field_count()),
        modified_unix_s: modified_unix_s(&metadata),
    };
    Ok(Described { content: *blake3::hash(&bytes).as_bytes(), signature, facts })
}

fn modified_unix_s(metadata: &std::fs::Metadata) -> Option<i64> {
    let modified = metadata.modified().ok()?;
    let since_epoch = modified.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(since_epoch.as_secs()).ok()
}

/// Checks each image against those before it, then groups the matches.
fn find_groups(
    described: Vec<Described>,
    skipped: Vec<Skipped>,
    settings: &DupsSettings,
) -> DupsResult {
    let mut index = DuplicateIndex::new(settings.params);
    let mut links = Vec::new();
    for (image_idx, image) in described.iter().enumerate() {
        for found in index.query(&image.content, &image.signature) {
            let (a, b) = (found.key, image_idx);
            links.push(Link { a, b, kind: found.kind, distance: found.distance });
        }
        index.insert(image_idx, image.content, &image.signature);
    }
    let facts: Vec<&FileFacts> = described.iter().map(|image| &image.facts).collect();
    let groups = dedup::group_matches(described.len(), &links, settings.kind)
        .into_iter()
        .map(|group| summarise(&group, &facts))
        .collect();
    DupsResult {
        n_images: described.len(),
        n_skipped: skipped.len(),
        skipped,
        kind: settings.kind,
        duplicate_max_distance: settings.params.duplicate_max_distance(),
        similar_max_distance: settings.params.similar_max_distance(),
        geometric: settings.params.geometric(),
        groups,
    }
}

fn summarise(group: &dedup::Group, facts: &[&FileFacts]) -> GroupSummary {
    let members: Vec<FileFacts> = group.members.iter().map(|&idx| facts[idx].clone()).collect();
    let keeper_idx = dedup::choose_keeper(&members).unwrap_or(0);
    let keeper = members[keeper_idx].path.clone();
    let mut paths = vec![keeper.clone()];
    paths.extend(members.iter().map(|m| m.path.clone()).filter(|path| *path != keeper));
    let pairs = group
        .links
        .iter()
        .map(|link| PairSummary {
            a: facts[link.a].path.clone(),
            b: facts[link.b].path.clone(),
            kind: link.kind,
            distance: link.distance,
        })
        .collect();
    GroupSummary { kind: group.kind, paths, keeper, max_distance: group.max_distance, pairs }
}

fn summary(result: &DupsResult) -> String {
    let n_files: usize = result.groups.iter().map(|group| group.paths.len()).sum();
    let mut text = format!(
        "{} images, {} skipped; {} groups ({} files) of kind {} or stronger\n\n",
        result.n_images,
        result.n_skipped,
        result.groups.len(),
        n_files,
        result.kind.name()
    );
    let mut rows = Vec::new();
    for (group_idx, group) in result.groups.iter().enumerate() {
        for (member_idx, path) in group.paths.iter().enumerate() {
            let first = member_idx == 0;
            rows.push(vec![
                if first { group_idx.to_string() } else { String::new() },
                if first { group.kind.name().to_string() } else { String::new() },
                if first { group.max_distance.to_string() } else { String::new() },
                if first { "keep".to_string() } else { String::new() },
                path.display().to_string(),
            ]);
        }
    }
    text += &table::render(&["group", "kind", "distance", "keeper", "path"], &rows);
    if !result.skipped.is_empty() {
        text += "\nskipped:\n";
        for skipped in &result.skipped {
            text += &format!("  {}\n", skipped.reason);
        }
    }
    text
}
