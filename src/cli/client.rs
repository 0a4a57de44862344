//! The client commands: `status`, `find` (without `--in`), `clusters`, `cluster`,
//! `unique`, `image`, `ingest`, `refit`, `events`, `dups` (without a folder),
//! `not-duplicate` and `report`, each one call (or a few, to page) to a running daemon. Tables by
//! default, `--json` for scripts.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{json, Value};

use super::table;
use crate::dedup::MatchKind;
use crate::server::client::{self, Client};
use crate::server::pb;

/// Where the daemon is and how to talk to it; shared by every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The daemon's gRPC address.
    #[arg(long, global = true, env = "CLUSTIMAGE_ADDR", default_value = "127.0.0.1:50551")]
    pub addr: String,
    /// A file holding the daemon's bearer token (its first line).
    #[arg(long, global = true, env = "CLUSTIMAGE_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// `--json` for the commands that print one result.
#[derive(Debug, Clone, Copy, Args)]
pub struct Output {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PathArgs {
    /// A file (or, for `ingest`, a folder) under a watched folder.
    pub path: PathBuf,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// A file or folder under a watched folder.
    pub path: PathBuf,
    /// Return only once the daemon has read everything queued.
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct RefitArgs {
    /// Return once the refit is over, with what it produced.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct EventArgs {
    /// Stop after this many events [default: run until interrupted].
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct NotDuplicateArgs {
    /// Two or more files under the watched folders, with different bytes.
    #[arg(value_name = "FILE", num_args = 2.., required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The folder to write into (on the daemon's machine; outside the watched folders).
    #[arg(value_name = "OUTDIR")]
    pub out_dir: PathBuf,
    /// Also draw the embedding with a thumbnail at every image (at most 300, sampled).
    #[arg(long)]
    pub all_thumbnails: bool,
    #[command(flatten)]
    pub output: Output,
}

/// What `find` asks the daemon.
#[derive(Debug)]
pub struct FindRequest<'a> {
    pub queries: &'a [PathBuf],
    pub k: Option<usize>,
    pub alpha: Option<f64>,
    pub max_distance: Option<f64>,
    pub json: bool,
}

/// The client command to run.
#[derive(Debug)]
pub enum ClientCommand<'a> {
    Status(Output),
    Find(FindRequest<'a>),
    Clusters(Output),
    Cluster {
        id: i32,
        json: bool,
    },
    Unique(Output),
    Image(&'a PathArgs),
    Ingest(&'a IngestArgs),
    Refit(&'a RefitArgs),
    Events(&'a EventArgs),
    /// The duplicate groups, of kind `kind` or stronger.
    Dups {
        kind: MatchKind,
        json: bool,
    },
    NotDuplicate(&'a NotDuplicateArgs),
    Report(&'a ReportArgs),
}

/// Runs one client command against the daemon at `connection`.
pub fn run(connection: &Connection, command: ClientCommand<'_>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let token = match &connection.token_file {
            Some(path) => Some(crate::server::read_token(path)?),
            None => None,
        };
        let mut client = client::connect(&connection.addr, token.as_deref()).await?;
        dispatch(&mut client, command).await.map_err(|error| explain(error, &connection.addr))
    })
}

async fn dispatch(client: &mut Client, command: ClientCommand<'_>) -> Result<()> {
    match command {
        ClientCommand::Status(output) => status(client, output).await,
        ClientCommand::Find(request) => find(client, &request).await,
        ClientCommand::Clusters(output) => clusters(client, output).await,
        ClientCommand::Cluster { id, json } => cluster(client, id, json).await,
        ClientCommand::Unique(output) => unique(client, output).await,
        ClientCommand::Image(args) => image(client, args).await,
        ClientCommand::Ingest(args) => ingest(client, args).await,
        ClientCommand::Refit(args) => refit(client, args).await,
        ClientCommand::Events(args) => events(client, args).await,
        ClientCommand::Dups { kind, json } => dups(client, kind, json).await,
        ClientCommand::NotDuplicate(args) => not_duplicate(client, args).await,
        ClientCommand::Report(args) => write_report(client, args).await,
    }
}

/// One line for a failed call: the daemon's message, which names the field or path.
fn explain(error: anyhow::Error, addr: &str) -> anyhow::Error {
    let Some(status) = error.downcast_ref::<tonic::Status>() else {
        return error;
    };
    match status.code() {
        tonic::Code::Unavailable => {
            anyhow::anyhow!("the daemon at {addr} stopped answering: {}", status.message())
        }
        tonic::Code::Unauthenticated => anyhow::anyhow!(
            "refused: {} (give the daemon's token with --token-file)",
            status.message()
        ),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}

fn print_json(value: &Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn status(client: &mut Client, output: Output) -> Result<()> {
    let status = client.get_status(pb::GetStatusRequest {}).await?.into_inner();
    let counters = status.counters.unwrap_or_default();
    let model = status.model.as_ref().map(|model| {
        json!({
            "method": model.method,
            "images": model.images,
            "clusters": model.clusters,
            "fitted_at_unix_s": model.fitted_at_unix_s,
            "age_s": model.age_s,
            "duration_s": model.duration_s,
            "provisional": model.provisional,
        })
    });
    let value = json!({
        "images": status.images,
        "files": status.files,
        "pending": status.pending,
        "failed": status.failed,
        "failed_by_kind": status.failed_by_kind,
        "clusters": status.clusters,
        "scanning": status.scanning,
        "refitting": status.refitting,
        "model": model,
        "changes_since_model": status.changes_since_model,
        "roots": status
            .roots
            .iter()
            .map(|root| json!({"path": root.path, "available": root.available}))
            .collect::<Vec<_>>(),
        "counters": {
            "files_seen": counters.files_seen,
            "decoded": counters.decoded,
            "unchanged": counters.unchanged,
            "known_content": counters.known_content,
            "moved": counters.moved,
            "removed": counters.removed,
            "failed": counters.failed,
            "refits": counters.refits,
            "duplicates_found": counters.duplicates_found,
            "duplicates_acted": counters.duplicates_acted,
        },
        "uptime_s": status.uptime_s,
    });
    if output.json {
        return print_json(&value);
    }
    let mut rows = vec![
        row("images", status.images),
        row("files", status.files),
        row("pending", status.pending),
        row("failed", status.failed),
        row("clusters", status.clusters),
    ];
    for (kind, count) in &status.failed_by_kind {
        rows.push(row(&format!("  {kind}"), count));
    }
    let activity = match (status.scanning, status.refitting) {
        (true, true) => "scanning, refitting",
        (true, false) => "scanning",
        (false, true) => "refitting",
        (false, false) => "idle",
    };
    rows.push(row("activity", activity));
    match &status.model {
        Some(model) => {
            let summary = format!(
                "{} on {} images, {} clusters, fitted {:.0} s ago in {:.2} s; {} placed since",
                model.method,
                model.images,
                model.clusters,
                model.age_s,
                model.duration_s,
                model.provisional
            );
            rows.push(row("model", summary));
        }
        None => rows.push(row("model", "none yet")),
    }
    rows.push(row("changes since model", status.changes_since_model));
    for root in &status.roots {
        let state = if root.available { "watched" } else { "missing (files kept)" };
        rows.push(row("root", format!("{} ({state})", root.path)));
    }
    print!("{}", table::render(&["", ""], &rows));
    Ok(())
}

fn row(name: &str, value: impl ToString) -> Vec<String> {
    vec![name.to_string(), value.to_string()]
}

async fn find(client: &mut Client, request: &FindRequest<'_>) -> Result<()> {
    let mut answers = Vec::new();
    for query in request.queries {
        let found = find_one(client, query, request).await?;
        answers.push((query.clone(), found));
    }
    if request.json {
        let queries: Vec<Value> = answers
            .iter()
            .map(|(query, found)| {
                json!({
                    "query": query,
                    "query_image_id": found.query_image_id,
                    "hits": found.hits.iter().map(hit_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        // One query: its hits at the top level too, for scripts that ask about one image.
        let mut value = json!({ "queries": queries });
        if let [(_, found)] = answers.as_slice() {
            value["hits"] = found.hits.iter().map(hit_json).collect();
        }
        return print_json(&value);
    }
    for (query, found) in &answers {
        println!("{}: {} hits", query.display(), found.hits.len());
        let rows: Vec<Vec<String>> = found
            .hits
            .iter()
            .enumerate()
            .map(|(rank, hit)| {
                vec![
                    (rank + 1).to_string(),
                    format!("{:.4}", hit.distance),
                    format!("{:.3e}", hit.p_value),
                    hit.cluster.to_string(),
                    hit.path.clone(),
                ]
            })
            .collect();
        print!("{}", table::render(&["rank", "distance", "p-value", "cluster", "path"], &rows));
    }
    Ok(())
}

/// Asks by path when the daemon can see the file under its roots, else sends its bytes.
async fn find_one(
    client: &mut Client,
    query: &Path,
    request: &FindRequest<'_>,
) -> Result<pb::FindSimilarResponse> {
    let absolute = std::path::absolute(query)
        .with_context(|| format!("{}: not a usable path", query.display()))?;
    let ask = |query| pb::FindSimilarRequest {
        query: Some(query),
        k: request.k.map_or(0, |k| u32::try_from(k).unwrap_or(u32::MAX)),
        alpha: request.alpha,
        max_distance: request.max_distance,
    };
    let by_path = pb::find_similar_request::Query::Path(absolute.to_string_lossy().into_owned());
    match client.find_similar(ask(by_path)).await {
        Ok(response) => return Ok(response.into_inner()),
        Err(status) if status.code() == tonic::Code::PermissionDenied => {}
        Err(status) => return Err(status.into()),
    }
    let bytes = std::fs::read(query).with_context(|| format!("cannot read {}", query.display()))?;
    let by_bytes = pb::find_similar_request::Query::Image(bytes);
    Ok(client.find_similar(ask(by_bytes)).await?.into_inner())
}

fn hit_json(hit: &pb::Hit) -> Value {
    json!({
        "path": hit.path,
        "paths": hit.paths,
        "image_id": hit.image_id,
        "distance": hit.distance,
        "p_value": if hit.p_value.is_finite() { json!(hit.p_value) } else { Value::Null },
        "cluster": hit.cluster,
    })
}

fn image_ref_json(image: Option<&pb::ImageRef>) -> Value {
    match image {
        Some(image) => {
            json!({ "path": image.path, "paths": image.paths, "image_id": image.image_id })
        }
        None => Value::Null,
    }
}

async fn clusters(client: &mut Client, output: Output) -> Result<()> {
    let mut clusters = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListClustersRequest { page_size: 0, page_token, members_per_cluster: 0 };
        let page = client.list_clusters(request).await?.into_inner();
        clusters.extend(page.clusters);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if output.json {
        let clusters: Vec<Value> = clusters
            .iter()
            .map(|cluster| {
                json!({
                    "id": cluster.id,
                    "size": cluster.size,
                    "representative":
                        cluster.representative.as_ref().map(|image| image.path.clone()),
                    "members":
                        cluster.members.iter().map(|m| m.path.clone()).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&json!({ "clusters": clusters }));
    }
    print!("{}", cluster_table(clusters.iter().map(|c| (c.id, c.size, c.representative.as_ref()))));
    Ok(())
}

fn cluster_table<'a>(rows: impl Iterator<Item = (i32, u64, Option<&'a pb::ImageRef>)>) -> String {
    let rows: Vec<Vec<String>> = rows
        .map(|(id, size, representative)| {
            let path =
                representative.map_or_else(|| "(gone since the fit)".into(), |r| r.path.clone());
            vec![id.to_string(), size.to_string(), path]
        })
        .collect();
    table::render(&["cluster", "size", "representative"], &rows)
}

async fn cluster(client: &mut Client, id: i32, json: bool) -> Result<()> {
    let mut page_token = String::new();
    let mut members = Vec::new();
    let first = loop {
        let request = pb::GetClusterRequest { id, page_size: 0, page_token };
        let page = client.get_cluster(request).await?.into_inner();
        members.extend(page.members.iter().cloned());
        if page.next_page_token.is_empty() {
            break page;
        }
        page_token = page.next_page_token.clone();
    };
    if json {
        return print_json(&json!({
            "id": first.id,
            "size": first.size,
            "representative": image_ref_json(first.representative.as_ref()),
            "members":
                members.iter().map(|member| image_ref_json(Some(member))).collect::<Vec<_>>(),
        }));
    }
    let representative = first.representative.as_ref().map_or("(gone since the fit)", |r| &r.path);
    println!("cluster {}: {} images; representative {representative}", first.id, first.size);
    for member in &members {
        println!("{}", member.paths.join("  "));
    }
    Ok(())
}

async fn unique(client: &mut Client, output: Output) -> Result<()> {
    let unique = client.list_unique(pb::ListUniqueRequest {}).await?.into_inner();
    if output.json {
        let clusters: Vec<Value> = unique
            .clusters
            .iter()
            .map(|cluster| {
                let representative = cluster.representative.as_ref();
                json!({
                    "id": cluster.id,
                    "size": cluster.size,
                    "representative": representative.map(|image| image.path.clone()),
                    "image_id": representative.map(|image| image.image_id.clone()),
                })
            })
            .collect();
        return print_json(&json!({ "clusters": clusters }));
    }
    let rows = unique.clusters.iter().map(|c| (c.id, c.size, c.representative.as_ref()));
    print!("{}", cluster_table(rows));
    Ok(())
}

async fn image(client: &mut Client, args: &PathArgs) -> Result<()> {
    let path = absolute_text(&args.path)?;
    let image = client.get_image(pb::GetImageRequest { path }).await?.into_inner();
    let state = match image.state() {
        pb::FileState::Pending => "pending",
        pb::FileState::Indexed => "indexed",
        pb::FileState::Failed => "failed",
        pb::FileState::Unspecified => "unknown",
    };
    let hashes: serde_json::Map<String, Value> =
        image.hashes.iter().map(|hash| (hash.kind.clone(), json!(hash.hex))).collect();
    let exif = image.exif.as_ref().map(|exif| {
        json!({
            "orientation": exif.orientation,
            "taken_at_unix_s": exif.taken_at_unix_s,
            "latitude_deg": exif.latitude_deg,
            "longitude_deg": exif.longitude_deg,
            "camera_make": exif.camera_make,
            "camera_model": exif.camera_model,
        })
    });
    let value = json!({
        "path": image.path,
        "state": state,
        "failure_kind": image.failure_kind,
        "failure_reason": image.failure_reason,
        "file_size_bytes": image.file_size_bytes,
        "image_id": image.image_id,
        "width_px": image.width_px,
        "height_px": image.height_px,
        "format": image.format,
        "hashes": hashes,
        "exif": exif,
        "cluster": image.cluster,
        "provisional": image.provisional,
        "paths": image.paths,
    });
    if args.output.json {
        return print_json(&value);
    }
    let mut rows = vec![row("path", &image.path), row("state", state)];
    if !image.failure_reason.is_empty() {
        rows.push(row("failure", format!("{}: {}", image.failure_kind, image.failure_reason)));
    }
    rows.push(row("size", format!("{} bytes", image.file_size_bytes)));
    if !image.image_id.is_empty() {
        rows.push(row("image id", &image.image_id));
        rows.push(row(
            "picture",
            format!("{}x{} {}", image.width_px, image.height_px, image.format),
        ));
        let provisional = if image.provisional { " (placed since the fit)" } else { "" };
        rows.push(row("cluster", format!("{}{provisional}", image.cluster)));
        for hash in &image.hashes {
            rows.push(row(&format!("{} hash", hash.kind), &hash.hex));
        }
        if let Some(exif) = &image.exif {
            let camera = format!("{} {}", exif.camera_make, exif.camera_model);
            if !camera.trim().is_empty() {
                rows.push(row("camera", camera.trim()));
            }
            if let Some(taken) = exif.taken_at_unix_s {
                rows.push(row("taken at (unix s)", taken));
            }
            if let (Some(lat), Some(lon)) = (exif.latitude_deg, exif.longitude_deg) {
                rows.push(row("position", format!("{lat:.5}, {lon:.5}")));
            }
        }
        for other in image.paths.iter().filter(|other| **other != image.path) {
            rows.push(row("same content", other));
        }
    }
    print!("{}", table::render(&["", ""], &rows));
    Ok(())
}

async fn ingest(client: &mut Client, args: &IngestArgs) -> Result<()> {
    let path = absolute_text(&args.path)?;
    let request = pb::IngestRequest { path: path.clone(), wait: args.wait };
    let response = client.ingest(request).await?.into_inner();
    if response.done {
        println!("{path}: ingested");
    } else {
        println!("{path}: queued");
    }
    Ok(())
}

async fn refit(client: &mut Client, args: &RefitArgs) -> Result<()> {
    let response = client.refit(pb::RefitRequest { wait: args.wait }).await?.into_inner();
    if args.output.json {
        return print_json(&json!({
            "done": response.done,
            "images": response.images,
            "clusters": response.clusters,
            "duration_s": response.duration_s,
        }));
    }
    if response.done {
        println!(
            "refitted: {} images, {} clusters, {:.2} s",
            response.images, response.clusters, response.duration_s
        );
    } else {
        println!("refit started");
    }
    Ok(())
}

async fn events(client: &mut Client, args: &EventArgs) -> Result<()> {
    let mut stream = client.watch_events(pb::WatchEventsRequest {}).await?.into_inner();
    let mut seen = 0;
    while args.count.is_none_or(|count| seen < count) {
        let Some(event) = stream.message().await? else {
            break;
        };
        seen += 1;
        if args.json {
            println!("{}", serde_json::to_string(&event_json(&event))?);
        } else {
            println!("{}", event_text(&event));
        }
    }
    Ok(())
}

fn event_json(event: &pb::Event) -> Value {
    use pb::event::Kind;
    let mut value = match &event.kind {
        Some(Kind::Added(e)) => {
            json!({"kind": "added", "path": e.path, "image_id": e.image_id, "decoded": e.decoded})
        }
        Some(Kind::Changed(e)) => {
            json!({"kind": "changed", "path": e.path, "image_id": e.image_id, "decoded": e.decoded})
        }
        Some(Kind::Removed(e)) => json!({"kind": "removed", "path": e.path}),
        Some(Kind::Moved(e)) => json!({"kind": "moved", "from": e.from, "to": e.to}),
        Some(Kind::Failed(e)) => {
            json!({"kind": "failed", "path": e.path, "failure": e.kind, "reason": e.reason})
        }
        Some(Kind::RootUnavailable(e)) => json!({"kind": "root-unavailable", "path": e.path}),
        Some(Kind::RootRestored(e)) => json!({"kind": "root-restored", "path": e.path}),
        Some(Kind::ScanFinished(e)) => {
            json!({
                "kind": "scan-finished",
                "files": e.files,
                "queued": e.queued,
                "forgotten": e.forgotten,
            })
        }
        Some(Kind::RefitStarted(e)) => json!({"kind": "refit-started", "images": e.images}),
        Some(Kind::RefitFinished(e)) => {
            json!({
                "kind": "refit-finished",
                "images": e.images,
                "clusters": e.clusters,
                "duration_s": e.duration_s,
            })
        }
        Some(Kind::RefitFailed(e)) => json!({"kind": "refit-failed", "reason": e.reason}),
        Some(Kind::Missed(e)) => json!({"kind": "missed", "count": e.count}),
        Some(Kind::Duplicate(e)) => json!({
            "kind": "duplicate",
            "path": e.path,
            "matches": e.matches.iter().map(|found| json!({
                "image_id": found.image_id,
                "paths": found.paths,
                "kind": kind_name(found.kind),
                "distance": found.distance,
            })).collect::<Vec<_>>(),
        }),
        None => json!({"kind": "unknown"}),
    };
    value["at_unix_s"] = json!(event.at_unix_s);
    value
}

fn event_text(event: &pb::Event) -> String {
    use pb::event::Kind;
    match &event.kind {
        Some(Kind::Added(e)) => format!("added    {} ({})", e.path, short(&e.image_id)),
        Some(Kind::Changed(e)) => format!("changed  {} ({})", e.path, short(&e.image_id)),
        Some(Kind::Removed(e)) => format!("removed  {}", e.path),
        Some(Kind::Moved(e)) => format!("moved    {} -> {}", e.from, e.to),
        Some(Kind::Failed(e)) => format!("failed   {} ({}: {})", e.path, e.kind, e.reason),
        Some(Kind::RootUnavailable(e)) => format!("missing  {} (its files are kept)", e.path),
        Some(Kind::RootRestored(e)) => format!("restored {}", e.path),
        Some(Kind::ScanFinished(e)) => {
            format!("scanned  {} files, {} queued, {} forgotten", e.files, e.queued, e.forgotten)
        }
        Some(Kind::RefitStarted(e)) => format!("refit    started on {} images", e.images),
        Some(Kind::RefitFinished(e)) => format!(
            "refit    finished: {} images, {} clusters, {:.2} s",
            e.images, e.clusters, e.duration_s
        ),
        Some(Kind::RefitFailed(e)) => format!("refit    failed: {}", e.reason),
        Some(Kind::Missed(e)) => format!("missed   {} events (the stream fell behind)", e.count),
        Some(Kind::Duplicate(e)) => match e.matches.first() {
            Some(found) => format!(
                "dup      {} is {} of {} (distance {}{})",
                e.path,
                kind_name(found.kind),
                found.paths.first().map_or("?", String::as_str),
                found.distance,
                match e.matches.len() {
                    1 => String::new(),
                    n => format!("; {} more", n - 1),
                }
            ),
            None => format!("dup      {}", e.path),
        },
        None => "unknown event (a newer daemon?)".to_string(),
    }
}

/// The name of a kind on the wire, as the command line spells it.
fn kind_name(kind: i32) -> &'static str {
    let kind = pb::DuplicateKind::try_from(kind).ok().and_then(pb::DuplicateKind::match_kind);
    kind.map_or("unknown", MatchKind::name)
}

/// Every duplicate group, page by page; the same JSON shape as `dups DIR --json`.
async fn dups(client: &mut Client, weakest: MatchKind, json: bool) -> Result<()> {
    let (asked, kind) = (weakest.name(), pb::DuplicateKind::from(weakest));
    let mut groups = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = pb::ListDuplicatesRequest { kind: kind.into(), page_size: 1000, page_token };
        let page = client.list_duplicates(request).await?.into_inner();
        groups.extend(page.groups);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if json {
        let groups: Vec<Value> = groups
            .iter()
            .map(|group| {
                json!({
                    "kind": kind_name(group.kind),
                    "paths": group.paths,
                    "keeper": group.keeper,
                    "max_distance": group.max_distance,
                    "pairs": group.pairs.iter().map(|pair| json!({
                        "a": pair.a, "b": pair.b,
                        "kind": kind_name(pair.kind), "distance": pair.distance,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return print_json(&json!({"kind": asked, "groups": groups}));
    }
    let n_files: usize = groups.iter().map(|group| group.paths.len()).sum();
    println!(
        "{} groups ({n_files} files) of kind {asked} or stronger
",
        groups.len()
    );
    let mut rows = Vec::new();
    for (group_idx, group) in groups.iter().enumerate() {
        for (member_idx, path) in group.paths.iter().enumerate() {
            let first = member_idx == 0;
            let cell = |text: String| if first { text } else { String::new() };
            rows.push(vec![
                cell(group_idx.to_string()),
                cell(kind_name(group.kind).to_string()),
                cell(group.max_distance.to_string()),
                cell("keep".to_string()),
                path.clone(),
            ]);
        }
    }
    print!("{}", table::render(&["group", "kind", "distance", "keeper", "path"], &rows));
    Ok(())
}

async fn write_report(client: &mut Client, args: &ReportArgs) -> Result<()> {
    let out_dir = absolute_text(&args.out_dir)?;
    let request = pb::WriteReportRequest { out_dir, all_thumbnails: args.all_thumbnails };
    let written = client.write_report(request).await?.into_inner();
    if args.output.json {
        return print_json(&json!({
            "index": written.index,
            "files": written.files,
            "images": written.images,
        }));
    }
    println!(
        "report of {} images: {} files; open {}",
        written.images,
        written.files.len(),
        written.index
    );
    Ok(())
}

async fn not_duplicate(client: &mut Client, args: &NotDuplicateArgs) -> Result<()> {
    let paths = args.paths.iter().map(|path| absolute_text(path)).collect::<Result<Vec<_>>>()?;
    let request = pb::MarkNotDuplicateRequest { paths };
    let marked = client.mark_not_duplicate(request).await?.into_inner();
    if args.output.json {
        return print_json(&json!({"pairs": marked.pairs, "links_removed": marked.links_removed}));
    }
    println!(
        "recorded {} pairs as not duplicates ({} were matched until now)",
        marked.pairs, marked.links_removed
    );
    Ok(())
}

fn short(image_id: &str) -> &str {
    &image_id[..image_id.len().min(16)]
}

fn absolute_text(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path)
        .with_context(|| format!("{}: not a usable path", path.display()))?;
    Ok(absolute.to_string_lossy().into_owned())
}
