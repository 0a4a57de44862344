//! The client commands of the `clustimage` binary against a real `clustimage serve`
//! process on a loopback port: the JSON that scripts read, the tables people read, and the
//! one line printed when the daemon is missing or refuses the call.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use crate::common::{fixture, photo_folder, picture_of};

/// A `clustimage serve` child process, stopped with SIGTERM when dropped.
struct Served {
    child: Child,
    addr: String,
    root: tempfile::TempDir,
    _data: tempfile::TempDir,
    token_file: Option<std::path::PathBuf>,
}

impl Served {
    /// Starts the daemon on a copy of the fixture photos and waits for its first model.
    fn start(token: Option<&str>) -> Served {
        let root = photo_folder();
        let data = tempfile::tempdir().unwrap();
        let token_file = token.map(|token| {
            let path = data.path().join("token");
            std::fs::write(&path, format!("{token}\n")).unwrap();
            path
        });
        let mut command = Command::new(env!("CARGO_BIN_EXE_clustimage"));
        command
            .args(["serve", "--watch", root.path().to_str().unwrap()])
            .args(["--data-dir", data.path().join("library").to_str().unwrap()])
            .args(["--listen", "127.0.0.1:0", "--max-clust", "6", "--quiet-ms", "100"])
            .env("NO_COLOR", "1")
            .stderr(Stdio::piped());
        if let Some(path) = &token_file {
            command.arg("--token-file").arg(path);
        }
        let mut child = command.spawn().unwrap();

        // The log is read on a thread so that the pipe never fills up.
        let (lines_tx, lines_rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Keep draining after the test stops listening.
                let _ = lines_tx.send(line);
            }
        });
        let mut addr = None;
        let mut log = Vec::new();
        loop {
            let line = match lines_rx.recv_timeout(Duration::from_secs(120)) {
                Ok(line) => line,
                Err(error) => panic!("the daemon stopped logging ({error}): {log:#?}"),
            };
            if line.contains("listening") {
                addr = line.split("addr=").nth(1).map(|rest| {
                    rest.split_whitespace().next().unwrap().trim_matches('"').to_string()
                });
            }
            let done = line.contains("refit finished");
            log.push(line);
            if done {
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| panic!("no listening line: {log:#?}"));
        Served { child, addr, root, _data: data, token_file }
    }

    /// Runs a client command against this daemon (with its token, if it has one).
    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_clustimage"));
        command.args(["--addr", &self.addr]).args(args);
        if let Some(path) = &self.token_file {
            command.arg("--token-file").arg(path);
        }
        command.output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "clustimage {args:?} failed: {stderr}");
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.push("--json");
        let text = self.ok(&full);
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
    }

    fn photo(&self, name: &str) -> String {
        self.root.path().join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}

/// Standard error of a failed command, which must be a single line.
fn one_error_line(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "more than one line: {stderr}");
    stderr
}

fn first_photo() -> String {
    let mut names: Vec<String> = std::fs::read_dir(fixture("photos"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.remove(0)
}

#[test]
fn status_unique_clusters_and_image_print_the_documented_json() {
    let served = Served::start(None);

    let status = served.json(&["status"]);
    assert_eq!(status["images"], 12, "{status:#}");
    assert_eq!(status["pending"], 0, "{status:#}");
    assert_eq!(status["failed"], 0, "{status:#}");
    let n_clusters = status["clusters"].as_u64().unwrap();
    assert!((2..=6).contains(&n_clusters), "{status:#}");

    let unique = served.json(&["unique"]);
    let tiles = unique["clusters"].as_array().unwrap();
    assert_eq!(tiles.len() as u64, n_clusters);
    let sizes: u64 = tiles.iter().map(|tile| tile["size"].as_u64().unwrap()).sum();
    assert_eq!(sizes, 12);
    for tile in tiles {
        assert!(tile["id"].is_u64(), "{tile:#}");
        let representative = Path::new(tile["representative"].as_str().unwrap());
        assert!(representative.starts_with(served.root.path()), "{tile:#}");
        assert!(representative.is_file(), "{tile:#}");
    }

    // Every cluster's members, as `cluster ID` lists them, add up to the library.
    let listed = served.json(&["clusters"]);
    let mut members = 0;
    for entry in listed["clusters"].as_array().unwrap() {
        let id = entry["id"].as_u64().unwrap().to_string();
        let cluster = served.json(&["cluster", &id]);
        let paths = cluster["members"].as_array().unwrap();
        assert_eq!(paths.len() as u64, entry["size"].as_u64().unwrap(), "{cluster:#}");
        members += paths.len();
    }
    assert_eq!(members, 12);

    let path = served.photo(&first_photo());
    let image = served.json(&["image", &path]);
    assert_eq!(image["state"], "indexed", "{image:#}");
    assert_eq!(image["image_id"].as_str().unwrap().len(), 64, "{image:#}");
    assert!(image["cluster"].is_u64(), "{image:#}");

    // The tables carry the same numbers.
    let table = served.ok(&["status"]);
    assert!(table.lines().any(|line| line.contains("images") && line.contains("12")), "{table}");
}

#[test]
fn find_leaves_the_query_out_and_an_upload_finds_it() {
    let served = Served::start(None);
    let query = served.photo("010_truchet-d_q35.jpg");
    // A photo of the library is not its own hit: its other version comes first.
    let result = served.json(&["find", &query, "-k", "5"]);
    let hits = result["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 5, "{result:#}");
    assert!(hits.iter().all(|hit| hit["path"] != query.as_str()), "{result:#}");
    let first = Path::new(hits[0]["path"].as_str().unwrap());
    assert_eq!(picture_of(first), picture_of(Path::new(&query)), "{result:#}");
    assert!(hits.iter().all(|hit| hit["cluster"].is_u64()), "{result:#}");
    let distances: Vec<f64> = hits.iter().map(|hit| hit["distance"].as_f64().unwrap()).collect();
    assert!(distances.windows(2).all(|pair| pair[0] <= pair[1]), "{distances:?}");

    // A copy outside the watched folder is uploaded instead, and finds the photo itself.
    let outside = tempfile::tempdir().unwrap();
    let copy = outside.path().join("copy.jpg");
    std::fs::copy(&query, &copy).unwrap();
    let result = served.json(&["find", copy.to_str().unwrap(), "-k", "2"]);
    assert_eq!(result["hits"][0]["path"], query.as_str(), "{result:#}");
    assert!(result["hits"][0]["distance"].as_f64().unwrap() < 1e-3, "{result:#}");
    assert_eq!(result["hits"][1]["path"], hits[0]["path"], "{result:#}");
}

#[test]
fn ingest_and_refit_wait_for_their_work() {
    let served = Served::start(None);
    let added = served.root.path().join("sub").join("again.jpg");
    std::fs::create_dir(added.parent().unwrap()).unwrap();
    std::fs::copy(fixture("photos").join(first_photo()), &added).unwrap();
    served.ok(&["ingest", served.root.path().join("sub").to_str().unwrap(), "--wait"]);
    let image = served.json(&["image", added.to_str().unwrap()]);
    assert_eq!(image["state"], "indexed", "{image:#}");

    let refit = served.json(&["refit", "--wait"]);
    assert_eq!(refit["images"], 12, "{refit:#}");
    let status = served.json(&["status"]);
    assert_eq!(status["changes_since_model"], 0, "{status:#}");
}

#[test]
fn events_prints_a_file_added_to_the_watched_folder() {
    let served = Served::start(None);
    let mut events = Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(["--addr", &served.addr, "events", "--count", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nothing says when the subscription is in place, so files keep arriving until the
    // command has printed its one event, which must be one of them.
    let source = fixture("photos").join(first_photo());
    let mut written = Vec::new();
    for n in 0..120 {
        if events.try_wait().unwrap().is_some() {
            break;
        }
        let added = served.root.path().join(format!("arrived{n}.jpg"));
        std::fs::copy(&source, &added).unwrap();
        written.push(added.to_str().unwrap().to_string());
        std::thread::sleep(Duration::from_millis(250));
    }
    if events.try_wait().unwrap().is_none() {
        events.kill().unwrap();
    }
    let output = events.wait_with_output().unwrap();
    assert!(output.status.success(), "no event: {}", String::from_utf8_lossy(&output.stderr));
    let event: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(event["kind"], "added", "{event:#}");
    assert!(written.iter().any(|path| event["path"] == path.as_str()), "{event:#}");
}

#[test]
fn a_missing_daemon_is_one_clear_line() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = unused.local_addr().unwrap().to_string();
    drop(unused);
    let output = Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(["--addr", &addr, "status"])
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(line.contains(&format!("no daemon is answering at {addr}")), "{line}");
}

#[test]
fn a_missing_or_wrong_token_is_one_clear_line() {
    let served = Served::start(Some("s3cret-token"));
    assert_eq!(served.json(&["status"])["images"], 12);

    let without = Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(["--addr", &served.addr, "status"])
        .output()
        .unwrap();
    let line = one_error_line(&without);
    assert!(line.contains("--token-file"), "{line}");

    let wrong = served._data.path().join("wrong");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(["--addr", &served.addr, "--token-file", wrong.to_str().unwrap(), "status"])
        .output()
        .unwrap();
    let line = one_error_line(&output);
    assert!(line.contains("refused"), "{line}");
}

#[test]
fn an_unknown_path_names_it() {
    let served = Served::start(None);
    let missing = served.photo("not-there.jpg");
    let output = served.run(&["image", &missing]);
    let line = one_error_line(&output);
    assert!(line.contains("not-there.jpg"), "{line}");

    let outside = tempfile::tempdir().unwrap();
    let stray = outside.path().join("stray.jpg");
    std::fs::copy(fixture("photos").join(first_photo()), &stray).unwrap();
    let output = served.run(&["image", stray.to_str().unwrap()]);
    let line = one_error_line(&output);
    assert!(line.contains("stray.jpg") && line.contains("watched"), "{line}");
}

#[test]
fn the_daemon_keeps_serving_when_its_log_reader_goes_away() {
    let root = photo_folder();
    let data = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clustimage"))
        .args(["serve", "--watch", root.path().to_str().unwrap()])
        .args(["--data-dir", data.path().to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .env("NO_COLOR", "1")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut addr = None;
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("listening") {
            let rest = line.split("addr=").nth(1).unwrap();
            addr = Some(rest.split_whitespace().next().unwrap().to_string());
        }
        if line.contains("refit finished") {
            break;
        }
    }
    drop(lines);
    let addr = addr.unwrap();

    // A refused call is logged at info: the write fails, and the daemon must not care.
    let missing = root.path().join("missing.jpg");
    for _ in 0..3 {
        let output = Command::new(env!("CARGO_BIN_EXE_clustimage"))
            .args(["--addr", &addr, "image", missing.to_str().unwrap()])
            .output()
            .unwrap();
        let line = one_error_line(&output);
        assert!(line.contains("missing.jpg"), "{line}");
    }
    assert!(child.try_wait().unwrap().is_none(), "the daemon exited");
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    assert!(child.wait().unwrap().success());
}

#[test]
fn dups_and_not_duplicate_ask_the_daemon() {
    let served = Served::start(None);
    let listed = served.json(&["dups"]);
    let groups = listed["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 4, "{listed:#}");
    for group in groups {
        assert_eq!(group["kind"], "duplicate");
        let paths: Vec<&str> =
            group["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
        assert_eq!(paths.len(), 2);
        assert_eq!(group["keeper"], paths[0]);
        assert_eq!(picture_of(Path::new(paths[0])), picture_of(Path::new(paths[1])));
    }
    let exact = served.json(&["dups", "--kind", "exact"]);
    assert!(exact["groups"].as_array().unwrap().is_empty());
    let table = served.ok(&["dups"]);
    assert!(table.starts_with("4 groups (8 files) of kind duplicate"), "{table}");

    let pair: Vec<&str> =
        groups[0]["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    let said = served.ok(&["not-duplicate", pair[0], pair[1]]);
    assert!(said.contains("recorded 1 pairs"), "{said}");
    assert_eq!(served.json(&["dups"])["groups"].as_array().unwrap().len(), 3);

    // Thresholds belong to a run over folders; the daemon has its own.
    let output = served.run(&["dups", "--duplicate-max-distance", "4"]);
    let line = one_error_line(&output);
    assert!(line.contains("--duplicate-max-distance") && line.contains("DIR"), "{line}");
    let output = served.run(&["not-duplicate", pair[0], pair[0]]);
    assert!(one_error_line(&output).contains("same bytes"));
}
