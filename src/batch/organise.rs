//! Putting files into one folder per cluster (`--move-to`).
//!
//! Nothing is ever overwritten: a name already taken, on disk or earlier in the plan, gets
//! a numeric suffix (`photo-2.jpg`). A move first tries a hard link plus removal of the
//! source, which cannot clobber a file that appeared meanwhile; across filesystems it
//! copies to a new file, syncs, checks the length, and only then removes the source.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind};
use std::path::{Path, PathBuf};

/// What to do with each file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Copy the file; the default, since it leaves the source untouched.
    Copy,
    Move,
    /// A hard link: no extra space, on the same filesystem only.
    Link,
}

/// One file's planned destination.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    pub source: PathBuf,
    pub target: PathBuf,
}

/// What happened to one file.
#[derive(Debug)]
pub struct Failure {
    pub source: PathBuf,
    pub error: io::Error,
}

/// The folder name of a cluster: `cluster-3`, or `noise`.
pub fn folder_name(cluster: i64) -> String {
    if cluster < 0 {
        "noise".to_string()
    } else {
        format!("cluster-{cluster}")
    }
}

/// Plans where every `(path, cluster)` goes under `out_dir`, avoiding every existing name.
pub fn plan(files: &[(PathBuf, i64)], out_dir: &Path) -> Vec<Placement> {
    let mut taken = HashSet::new();
    files
        .iter()
        .map(|(source, cluster)| {
            let folder = out_dir.join(folder_name(*cluster));
            let name = source.file_name().map(PathBuf::from).unwrap_or_else(|| "image".into());
            let target = free_name(&folder, &name, &taken);
            taken.insert(target.clone());
            Placement { source: source.clone(), target }
        })
        .collect()
}

/// Carries out a plan. A file that fails is reported and the rest go on; the returned
/// placements are the ones done (a target may differ from the plan if a name was taken
/// meanwhile).
pub fn execute(plan: &[Placement], action: Action) -> (Vec<Placement>, Vec<Failure>) {
    let mut done = Vec::new();
    let mut failures = Vec::new();
    for placement in plan {
        match place(&placement.source, &placement.target, action) {
            Ok(target) => done.push(Placement { source: placement.source.clone(), target }),
            Err(error) => failures.push(Failure { source: placement.source.clone(), error }),
        }
    }
    (done, failures)
}

/// The first of `name`, `stem-2.ext`, `stem-3.ext`, ... that is neither on disk nor taken.
fn free_name(folder: &Path, name: &Path, taken: &HashSet<PathBuf>) -> PathBuf {
    let stem = name.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let extension = name.extension().map(|e| format!(".{}", e.to_string_lossy()));
    let extension = extension.unwrap_or_default();
    (1..)
        .map(|n| match n {
            1 => folder.join(name),
            n => folder.join(format!("{stem}-{n}{extension}")),
        })
        .find(|candidate| !taken.contains(candidate) && !candidate.exists())
        .expect("some suffix is free")
}

/// Places one file, moving to a new suffix if the target appeared since planning.
fn place(source: &Path, target: &Path, action: Action) -> io::Result<PathBuf> {
    let folder = target.parent().expect("targets are inside a cluster folder");
    fs::create_dir_all(folder)?;
    let mut target = target.to_path_buf();
    loop {
        match place_once(source, &target, action) {
            Err(error) if error.kind() == ErrorKind::AlreadyExists => {
                let name = PathBuf::from(target.file_name().expect("target has a name"));
                target = free_name(folder, &name, &HashSet::from([target.clone()]));
            }
            other => return other.map(|()| target),
        }
    }
}

fn place_once(source: &Path, target: &Path, action: Action) -> io::Result<()> {
    match action {
        Action::Copy => copy_new(source, target),
        Action::Link => fs::hard_link(source, target),
        Action::Move => match fs::hard_link(source, target) {
            Ok(()) => fs::remove_file(source),
            Err(error) if error.kind() == ErrorKind::AlreadyExists => Err(error),
            // Another filesystem, or one without hard links: copy, check, then remove.
            Err(_) => {
                copy_new(source, target)?;
                fs::remove_file(source)
            }
        },
    }
}

/// Copies into a file that must not exist yet, syncs it and checks its length.
fn copy_new(source: &Path, target: &Path) -> io::Result<()> {
    let mut input = File::open(source)?;
    let mut output = OpenOptions::new().write(true).create_new(true).open(target)?;
    let copied = io::copy(&mut input, &mut output)?;
    output.sync_all()?;
    let expected = input.metadata()?.len();
    if copied != expected {
        drop(output);
        fs::remove_file(target)?;
        let message = format!("copied {copied} of {expected} bytes of {}", source.display());
        return Err(io::Error::other(message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Vec<(PathBuf, i64)>) {
        let dir = tempfile::tempdir().unwrap();
        for folder in ["a", "b"] {
            fs::create_dir(dir.path().join(folder)).unwrap();
            fs::write(dir.path().join(folder).join("same.jpg"), folder.as_bytes()).unwrap();
        }
        let files = vec![(dir.path().join("a/same.jpg"), 0), (dir.path().join("b/same.jpg"), 0)];
        (dir, files)
    }

    #[test]
    fn clashing_names_get_suffixes_and_copies_keep_sources() {
        let (dir, files) = setup();
        let out = dir.path().join("out");
        let planned = plan(&files, &out);
        assert_eq!(planned[0].target, out.join("cluster-0/same.jpg"));
        assert_eq!(planned[1].target, out.join("cluster-0/same-2.jpg"));
        let (done, failures) = execute(&planned, Action::Copy);
        assert!(failures.is_empty());
        assert_eq!(fs::read(&done[1].target).unwrap(), b"b");
        assert!(files[0].0.exists() && files[1].0.exists());
    }

    #[test]
    fn a_file_that_appears_after_planning_is_not_overwritten() {
        let (dir, files) = setup();
        let out = dir.path().join("out");
        let planned = plan(&files, &out);
        fs::create_dir_all(out.join("cluster-0")).unwrap();
        fs::write(out.join("cluster-0/same.jpg"), b"precious").unwrap();
        let (done, failures) = execute(&planned, Action::Move);
        assert!(failures.is_empty());
        assert_eq!(fs::read(out.join("cluster-0/same.jpg")).unwrap(), b"precious");
        let contents: HashSet<Vec<u8>> =
            done.iter().map(|p| fs::read(&p.target).unwrap()).collect();
        assert_eq!(contents, HashSet::from([b"a".to_vec(), b"b".to_vec()]));
        assert!(!files[0].0.exists() && !files[1].0.exists());
    }

    #[test]
    fn links_share_the_file_and_noise_has_its_folder() {
        let (dir, mut files) = setup();
        files[1].1 = NOISE;
        let out = dir.path().join("out");
        let (done, _) = execute(&plan(&files, &out), Action::Link);
        assert_eq!(done[1].target, out.join("noise/same.jpg"));
        assert_eq!(fs::read(&done[1].target).unwrap(), b"b");
    }

    const NOISE: i64 = super::super::result::NOISE_LABEL;
}
