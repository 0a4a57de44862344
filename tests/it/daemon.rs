//! The daemon on real folders: scan, watch, ingest, refit, restart, and the store on disk.
//!
//! Each test runs a real daemon (in this process, or the binary for the crash and signal
//! tests) on a temporary folder and a temporary data folder. Waits poll the status until a
//! condition holds; the deadline only keeps a broken build from hanging, it measures
//! nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clustimage::daemon::{Daemon, DaemonConfig, DaemonHandle, Event, Status};
use clustimage::dedup::MatchKind;
use clustimage::store::{FileState, Store};

use crate::common::{fixture, picture_of};

const DEADLINE: Duration = Duration::from_secs(120);

/// Settings for a test: quick to react, refits only when asked or at start.
pub(crate) fn config(root: &Path, data: &Path) -> DaemonConfig {
    let mut config = DaemonConfig::new(vec![root.to_path_buf()], data.to_path_buf());
    config.workers = 2;
    config.quiet = Duration::from_millis(200);
    config.write_timeout = Duration::from_secs(30);
    config.refit_after_changes = 1_000_000;
    config.min_images = 5;
    config.fit.cluster.max_clusters = 6;
    config
}

pub(crate) async fn start(config: DaemonConfig) -> (Daemon, DaemonHandle) {
    // RUST_LOG=clustimage=debug shows the daemon's log under the failing test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let daemon = Daemon::start(config).await.expect("the daemon starts");
    let handle = daemon.handle();
    (daemon, handle)
}

/// Polls the status until `condition` holds.
pub(crate) async fn wait_for(
    handle: &DaemonHandle,
    what: &str,
    condition: impl Fn(&Status) -> bool,
) {
    let started = Instant::now();
    loop {
        let status = handle.status();
        if condition(&status) {
            return;
        }
        assert!(started.elapsed() < DEADLINE, "never {what}; last status: {status:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the first scan, its work, and the first model.
pub(crate) async fn wait_settled(handle: &DaemonHandle, images: u64) {
    wait_for(handle, &format!("{images} images indexed"), |status| {
        status.images == images && status.pending == 0 && !status.scanning
    })
    .await;
    wait_for(handle, "a model fitted on every image", |status| {
        !status.refitting && status.model.as_ref().is_some_and(|model| model.images == images)
    })
    .await;
}

/// Receives events until one matches.
async fn expect_event(
    events: &mut tokio::sync::broadcast::Receiver<Event>,
    what: &str,
    matches: impl Fn(&Event) -> bool,
) -> Event {
    let started = Instant::now();
    loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Ok(event)) if matches(&event) => return event,
            Ok(Ok(_)) | Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(error)) => panic!("event stream ended waiting for {what}: {error}"),
            Err(_) => panic!("no event: {what}"),
        }
    }
}

pub(crate) fn photo_paths(root: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> =
        std::fs::read_dir(root).unwrap().map(|entry| entry.unwrap().path()).collect();
    paths.sort();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_scan_indexes_every_photo_and_fits_a_model() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    let status = handle.status();
    assert_eq!(status.files, 12);
    assert_eq!(status.counters.decoded, 12);
    assert!(status.failed.is_empty());
    assert!(status.model.as_ref().unwrap().clusters >= 2);
    // Every pair of versions of one picture: the other version is the nearest image.
    let library = handle.library();
    for path in
        photo_paths(root.path()).iter().filter(|path| path.to_string_lossy().contains("_q35"))
    {
        let content = library.catalog.read().unwrap().content_of(path).unwrap();
        let hits = library.similar_to(&content, 3).unwrap();
        assert_eq!(hits.len(), 3);
        assert!(hits.windows(2).all(|pair| pair[0].distance <= pair[1].distance));
        let nearest = &hits[0].paths[0];
        assert_eq!(picture_of(nearest), picture_of(path), "nearest to {}", path.display());
    }
    let clusters = library.clusters().unwrap();
    let members: usize = clusters.iter().map(|cluster| cluster.members.len()).sum();
    assert_eq!(members, 12);
    assert!(clusters.iter().all(|cluster| cluster.representative.is_some()));
    drop(handle);
    daemon.shutdown().await.unwrap();
    let store = Store::open(&data.path().join("store")).unwrap();
    for path in photo_paths(root.path()) {
        let record = store.file(&path).unwrap().unwrap();
        assert!(matches!(record.state, FileState::Indexed { .. }), "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_change_is_reflected_in_store_index_and_status() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    let library = handle.library();
    let mut events = handle.subscribe();
    let content_of = |path: &Path| library.catalog.read().unwrap().content_of(path);

    // Added: a new picture is indexed and placed in the model without a refit.
    let new = root.path().join("new.jpg");
    std::fs::copy(fixture("exif/046_ColorfulCups_half_exif.jpg"), &new).unwrap();
    expect_event(&mut events, "added", |e| matches!(e, Event::Added { path, .. } if *path == new))
        .await;
    let added = content_of(&new).unwrap();
    assert_eq!(handle.status().images, 13);
    assert!(library.cluster_of(&added).is_some(), "a new image gets a provisional cluster");
    assert!(!library.similar_to(&added, 5).unwrap().is_empty());
    assert_eq!(handle.status().model.unwrap().provisional, 1);

    // Modified: the same path now holds another picture.
    let other = fixture("exif/047_DarkestHour.jpg");
    std::fs::copy(&other, &new).unwrap();
    expect_event(
        &mut events,
        "changed",
        |e| matches!(e, Event::Changed { path, .. } if *path == new),
    )
    .await;
    assert_ne!(content_of(&new).unwrap(), added);
    assert_eq!(handle.status().images, 13);

    // Renamed, then moved into a subfolder: the record follows, nothing is read.
    let decoded_before = handle.status().counters.decoded;
    let renamed = root.path().join("renamed.jpg");
    std::fs::rename(&new, &renamed).unwrap();
    expect_event(&mut events, "moved", |e| matches!(e, Event::Moved { to, .. } if *to == renamed))
        .await;
    std::fs::create_dir(root.path().join("sub")).unwrap();
    let moved = root.path().join("sub/renamed.jpg");
    std::fs::rename(&renamed, &moved).unwrap();
    expect_event(&mut events, "moved", |e| matches!(e, Event::Moved { to, .. } if *to == moved))
        .await;
    assert!(content_of(&new).is_none() && content_of(&renamed).is_none());
    let store = &library.store;
    assert!(store.file(&renamed).unwrap().is_none());
    assert!(store.file(&moved).unwrap().unwrap().content().is_some());

    // Copied: a second path, the same content, nothing decoded.
    let copy = root.path().join("copy.jpg");
    std::fs::copy(&moved, &copy).unwrap();
    expect_event(&mut events, "added", |e| matches!(e, Event::Added { path, .. } if *path == copy))
        .await;
    assert_eq!(content_of(&copy), content_of(&moved));
    let status = handle.status();
    assert_eq!((status.files, status.images), (14, 13));
    assert_eq!(status.counters.decoded, decoded_before, "moves and copies decode nothing");
    assert_eq!(status.counters.moved, 2);

    // Deleted: gone from the status and from every answer at once.
    let victim = photo_paths(root.path())[0].clone();
    let victim_content = content_of(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    expect_event(
        &mut events,
        "removed",
        |e| matches!(e, Event::Removed { path } if *path == victim),
    )
    .await;
    assert_eq!(handle.status().images, 12);
    assert!(library.similar_to(&victim_content, 5).is_err());
    for path in photo_paths(root.path()).iter().filter(|path| path.is_file()) {
        let content = content_of(path).unwrap();
        let hits = library.similar_to(&content, 20).unwrap();
        assert!(hits.iter().all(|hit| hit.content != victim_content));
    }
    assert!(store.file(&victim).unwrap().is_none());

    // A refit on demand takes every change in.
    let summary = handle.refit(true).await.unwrap().unwrap();
    assert_eq!(summary.images, 12);
    assert_eq!(handle.status().changes_since_model, 0);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_decodes_nothing_and_refits_nothing() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    let fitted_at = handle.library().view().unwrap().fitted.fingerprint;
    drop(handle);
    daemon.shutdown().await.unwrap();

    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    handle.idle().await.unwrap();
    let status = handle.status();
    assert_eq!(status.counters.decoded, 0);
    assert_eq!(status.counters.known_content, 0, "unchanged files are not even read");
    assert_eq!(status.counters.unchanged, 12);
    assert_eq!(status.counters.refits, 0);
    assert_eq!(handle.library().view().unwrap().fitted.fingerprint, fitted_at);
    assert_eq!(status.changes_since_model, 0);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_model_comes_with_enough_images_and_refits_follow_changes() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = config(root.path(), data.path());
    config.refit_after_changes = 3;
    config.min_images = 6;
    let (daemon, handle) = start(config).await;
    let mut events = handle.subscribe();
    let photos = photo_paths(&fixture("photos"));
    for path in &photos[..6] {
        std::fs::copy(path, root.path().join(path.file_name().unwrap())).unwrap();
    }
    let first = expect_event(&mut events, "a first model", |event| {
        matches!(event, Event::RefitFinished { .. })
    })
    .await;
    assert!(matches!(first, Event::RefitFinished { images: 6, .. }), "{first:?}");
    for path in &photos[6..9] {
        std::fs::copy(path, root.path().join(path.file_name().unwrap())).unwrap();
    }
    let next = expect_event(&mut events, "a refit after three changes", |event| {
        matches!(event, Event::RefitFinished { images: 9, .. })
    })
    .await;
    assert!(matches!(next, Event::RefitFinished { images: 9, .. }));
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_index_is_rebuilt_and_a_damaged_model_refitted() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    drop(handle);
    daemon.shutdown().await.unwrap();
    // Truncate every file of the saved index.
    for entry in walkdir::WalkDir::new(data.path().join("index")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            std::fs::write(entry.path(), &bytes[..bytes.len() / 2]).unwrap();
        }
    }
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    handle.idle().await.unwrap();
    assert_eq!(handle.status().counters.refits, 0, "the index is rebuilt from the saved model");
    let library = handle.library();
    let any = library.catalog.read().unwrap().contents()[0];
    assert_eq!(library.similar_to(&any, 4).unwrap().len(), 4);
    drop(handle);
    daemon.shutdown().await.unwrap();
    std::fs::write(data.path().join("model.bin"), b"garbage").unwrap();
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    assert_eq!(handle.status().counters.refits, 1, "an unreadable model is refitted");
    assert_eq!(handle.status().counters.decoded, 0);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_that_goes_away_and_comes_back_loses_nothing() {
    let parent = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let root = parent.path().join("disk");
    std::fs::create_dir(&root).unwrap();
    for path in photo_paths(&fixture("photos")) {
        std::fs::copy(&path, root.join(path.file_name().unwrap())).unwrap();
    }
    let (daemon, handle) = start(config(&root, data.path())).await;
    wait_settled(&handle, 12).await;
    let away = parent.path().join("disk-away");
    std::fs::rename(&root, &away).unwrap();
    wait_for(&handle, "the root reported missing", |status| !status.roots[0].available).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = handle.status();
    assert_eq!((status.files, status.images), (12, 12), "an unmounted root keeps its files");
    std::fs::rename(&away, &root).unwrap();
    wait_for(&handle, "the root back", |status| status.roots[0].available).await;
    wait_for(&handle, "the root rescanned", |status| {
        status.pending == 0 && status.counters.unchanged >= 12
    })
    .await;
    let status = handle.status();
    assert_eq!((status.files, status.images), (12, 12));
    assert_eq!(status.counters.removed, 0);
    assert_eq!(status.counters.decoded, 12, "nothing decoded twice");
    daemon.shutdown().await.unwrap();
}

/// A daemon on an empty folder, idle, that fits no model.
async fn start_without_model() -> (tempfile::TempDir, tempfile::TempDir, Daemon, DaemonHandle) {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = config(root.path(), data.path());
    config.min_images = 1000;
    let (daemon, handle) = start(config).await;
    handle.idle().await.unwrap();
    (root, data, daemon, handle)
}

/// Creates `path` with the first half of a fixture photo, left open; returns the file and
/// the photo's bytes.
fn half_write(path: &Path) -> (std::fs::File, Vec<u8>) {
    use std::io::Write;
    let bytes = std::fs::read(photo_paths(&fixture("photos"))[0].clone()).unwrap();
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(&bytes[..bytes.len() / 2]).unwrap();
    file.flush().unwrap();
    (file, bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_being_written_is_read_only_once_complete() {
    use std::io::Write;
    let (root, _data, daemon, handle) = start_without_model().await;
    let path = root.path().join("slow.jpg");
    let (mut file, bytes) = half_write(&path);
    // Several quiet periods pass with the file open and half written.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = handle.status();
    assert_eq!((status.images, status.n_failed()), (0, 0), "read half-way: {status:#?}");
    assert!(handle.library().store.file(&path).unwrap().is_none());
    file.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(file);
    wait_for(&handle, "the file indexed", |status| status.images == 1).await;
    assert_eq!(handle.status().n_failed(), 0);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_written_under_a_temporary_name_arrives_when_renamed() {
    use std::io::Write;
    let (root, _data, daemon, handle) = start_without_model().await;
    let partial = root.path().join("photo.jpg.part");
    let (mut file, bytes) = half_write(&partial);
    // Open and half written, under a name that is not an image's: nothing is pending.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let status = handle.status();
    assert_eq!((status.pending, status.files), (0, 0), "{status:#?}");
    file.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(file);
    let path = root.path().join("photo.jpg");
    std::fs::rename(&partial, &path).unwrap();
    wait_for(&handle, "the renamed file indexed", |status| {
        status.images == 1 && status.pending == 0
    })
    .await;
    let status = handle.status();
    assert_eq!((status.files, status.n_failed()), (1, 0), "{status:#?}");
    assert!(handle.library().store.file(&path).unwrap().is_some());
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_are_recorded_as_failed_and_the_daemon_carries_on() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let photo = std::fs::read(photo_paths(root.path())[0].clone()).unwrap();
    std::fs::write(root.path().join("empty.jpg"), b"").unwrap();
    std::fs::write(root.path().join("truncated.jpg"), &photo[..photo.len() / 3]).unwrap();
    std::fs::write(root.path().join("words.png"), b"this is text, not a picture").unwrap();
    std::fs::write(root.path().join("notes.txt"), b"not an image name: ignored").unwrap();
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    let status = handle.status();
    let failed: Vec<(&str, u64)> =
        status.failed.iter().map(|(kind, count)| (kind.as_str(), *count)).collect();
    assert_eq!(failed, vec![("corrupt", 1), ("empty", 1), ("unknown-format", 1)]);
    assert_eq!(status.files, 15);
    let record = handle.library().store.file(&root.path().join("truncated.jpg")).unwrap();
    let FileState::Failed { reason, .. } = record.unwrap().state else { panic!("not failed") };
    assert!(reason.contains("truncated.jpg"), "{reason}");
    // A bad file that is fixed is read again.
    std::fs::write(root.path().join("truncated.jpg"), &photo).unwrap();
    wait_for(&handle, "the fixed file indexed", |status| status.n_failed() == 2).await;
    daemon.shutdown().await.unwrap();
}

/// Small distinct PNG pictures: a gradient whose direction and phase depend on `seed`.
fn write_small_png(path: &Path, seed: u32) {
    let image = image::GrayImage::from_fn(24, 24, |x, y| {
        let value = (x * (seed % 7 + 1) + y * (seed / 7 % 11 + 1) + seed * 13) % 256;
        image::Luma([value as u8])
    });
    image.save(path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_thousands_of_files_is_fully_ingested() {
    const N_FILES: u32 = 3000;
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut config = config(root.path(), data.path());
    config.min_images = 1_000_000;
    config.preprocessing.width_px = 24;
    config.preprocessing.height_px = 24;
    let (daemon, handle) = start(config).await;
    handle.idle().await.unwrap();
    for folder in 0..3 {
        std::fs::create_dir(root.path().join(format!("batch{folder}"))).unwrap();
    }
    for seed in 0..N_FILES {
        let path = root.path().join(format!("batch{}/img{seed:05}.png", seed % 3));
        write_small_png(&path, seed);
    }
    wait_for(&handle, "every file indexed", |status| {
        status.files == u64::from(N_FILES) && status.pending == 0 && !status.scanning
    })
    .await;
    let status = handle.status();
    assert_eq!(status.n_failed(), 0);
    let indexed = handle.library().catalog.read().unwrap().n_indexed_paths();
    assert_eq!(indexed, N_FILES as usize);
    daemon.shutdown().await.unwrap();
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    use rand::{Rng, SeedableRng};
    const N_FILES: u32 = 400;
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for seed in 0..N_FILES {
        write_small_png(&root.path().join(format!("img{seed:04}.png")), seed);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let args = [
        "serve",
        "--watch",
        root.path().to_str().unwrap(),
        "--data-dir",
        data.path().to_str().unwrap(),
        "--dim",
        "24",
        "--quiet-ms",
        "50",
        "--min-images",
        "100000",
        "--listen",
        "127.0.0.1:0",
    ];
    for _ in 0..10 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clustimage"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.gen_range(100..1500)));
        child.kill().unwrap();
        child.wait().unwrap();
        // The store opens after every crash.
        let store = Store::open(&data.path().join("store")).expect("the store reopens");
        drop(store);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut config = config(root.path(), data.path());
        config.min_images = 100_000;
        config.preprocessing.width_px = 24;
        config.preprocessing.height_px = 24;
        let (daemon, handle) = start(config).await;
        wait_for(&handle, "every file indexed", |status| {
            status.images == u64::from(N_FILES) && status.pending == 0 && !status.scanning
        })
        .await;
        daemon.shutdown().await.unwrap();
    });
    let store = Store::open(&data.path().join("store")).unwrap();
    let records: Vec<_> = store.files().map(Result::unwrap).collect();
    assert_eq!(records.len(), N_FILES as usize, "one record per file");
    assert!(records.iter().all(|(_, record)| matches!(record.state, FileState::Indexed { .. })));
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    use std::io::BufRead;
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(["serve", "--watch", root.path().to_str().unwrap()])
        .args(["--data-dir", data.path().to_str().unwrap(), "--max-clust", "6"])
        .args(["--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push(line.clone());
        if line.contains("refit finished") {
            break;
        }
    }
    assert!(log.iter().any(|line| line.contains("scan finished")), "{log:#?}");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    log.extend(lines.map(Result::unwrap));
    let exit = child.wait().unwrap();
    assert!(exit.success(), "exit {exit:?}: {log:#?}");
    assert!(log.iter().any(|line| line.contains("store flushed")), "{log:#?}");
    let store = Store::open(&data.path().join("store")).unwrap();
    assert_eq!(store.n_files(), 12);
}

#[test]
fn a_bad_setting_stops_the_daemon_naming_its_key() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let base = ["serve", "--watch", root.path().to_str().unwrap(), "--listen", "127.0.0.1:0"];
    let data_arg = ["--data-dir", data.path().to_str().unwrap()];
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(base)
        .args(data_arg)
        .args(["--workers", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("workers"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(base)
        .args(data_arg)
        .env("CLUSTIMAGE__DAEMON__REFIT_EVERY_S", "0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("refit-every-s"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(base)
        .args(data_arg)
        .args(["--method", "exif-time"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("method"));
}

/// The paths of each duplicate group, as listed now.
fn duplicate_groups(handle: &DaemonHandle, kind: MatchKind) -> Vec<Vec<PathBuf>> {
    let list = handle.duplicate_list(kind).unwrap();
    list.groups.into_iter().map(|group| group.paths).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verdict_holds_across_a_refit_and_a_restart() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    let groups = duplicate_groups(&handle, MatchKind::Duplicate);
    assert_eq!(groups.len(), 4, "{groups:#?}");
    let garden = groups.iter().find(|paths| picture_of(&paths[0]) == "030_Garden").unwrap();
    let marked = handle.mark_not_duplicate(garden).unwrap();
    assert_eq!((marked.pairs, marked.links_removed), (1, 1));
    // Two paths of the same bytes cannot be marked: they are copies whatever one says.
    let copy = root.path().join("garden again.jpg");
    std::fs::copy(&garden[0], &copy).unwrap();
    handle.ingest(&copy, true).await.unwrap();
    let error = handle.mark_not_duplicate(&[garden[0].clone(), copy.clone()]).unwrap_err();
    assert!(error.to_string().contains("same bytes"), "{error}");
    let exact = duplicate_groups(&handle, MatchKind::Exact);
    assert_eq!(exact.len(), 1);
    assert_eq!(exact[0].len(), 2);
    // The copy joins its original, which the verdict keeps apart from the other version.
    let groups = duplicate_groups(&handle, MatchKind::Similar);
    assert_eq!(groups.len(), 4);
    assert!(!groups.iter().any(|paths| paths.contains(&garden[0]) && paths.contains(&garden[1])));

    handle.refit(true).await.unwrap();
    assert_eq!(duplicate_groups(&handle, MatchKind::Similar), groups);
    drop(handle);
    daemon.shutdown().await.unwrap();

    let (daemon, handle) = start(config(root.path(), data.path())).await;
    wait_settled(&handle, 12).await;
    assert_eq!(duplicate_groups(&handle, MatchKind::Similar), groups);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arriving_duplicates_are_set_aside_and_restored_unchanged() {
    use clustimage::daemon::Action;
    use clustimage::dedup::quarantine::Quarantine;
    use std::os::unix::fs::MetadataExt;

    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let quarantine = tempfile::tempdir().unwrap();
    let keeper = root.path().join("garden.jpg");
    std::fs::copy(fixture("photos/030_Garden_q35.jpg"), &keeper).unwrap();
    let mut config = config(root.path(), data.path());
    config.dup_actions.duplicate = Action::Move;
    config.dup_actions.exact = Action::Hardlink;
    config.dup_actions.quarantine = Some(quarantine.path().to_path_buf());
    let (daemon, handle) = start(config.clone()).await;
    wait_for(&handle, "the first photo indexed", |s| s.images == 1 && s.pending == 0).await;

    // A smaller version: a duplicate, and not the keeper, so it is moved.
    let smaller = root.path().join("album/garden small.jpg");
    std::fs::create_dir(root.path().join("album")).unwrap();
    let smaller_bytes = std::fs::read(fixture("photos/030_Garden_half.jpg")).unwrap();
    std::fs::write(&smaller, &smaller_bytes).unwrap();
    // The same bytes again: replaced by a hard link to the keeper.
    let copy = root.path().join("garden copy.jpg");
    std::fs::copy(&keeper, &copy).unwrap();
    wait_for(&handle, "both duplicates acted on", |s| s.counters.duplicates_acted == 2).await;
    handle.idle().await.unwrap();

    assert!(!smaller.exists());
    let root_name = root.path().file_name().unwrap();
    let set_aside = quarantine.path().join(root_name).join("album/garden small.jpg");
    assert_eq!(std::fs::read(&set_aside).unwrap(), smaller_bytes);
    let (keeper_meta, copy_meta) =
        (std::fs::metadata(&keeper).unwrap(), std::fs::metadata(&copy).unwrap());
    assert_eq!(keeper_meta.ino(), copy_meta.ino(), "the copy is a link to the keeper");
    assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&keeper).unwrap());
    let status = handle.status();
    assert_eq!((status.images, status.files), (1, 2), "{status:#?}");
    drop(handle);
    daemon.shutdown().await.unwrap();

    // Put back by the manifest: the same bytes at the same path.
    let report = Quarantine::open(quarantine.path()).unwrap().restore(|_| true).unwrap();
    assert_eq!(report.restored.len(), 1, "{report:#?}");
    assert_eq!(std::fs::read(&smaller).unwrap(), smaller_bytes);
    assert!(!set_aside.exists());
}
