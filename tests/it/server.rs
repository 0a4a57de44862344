//! The gRPC API against a real server on a loopback port, over a real daemon on real photos:
//! every call, its paging, its errors, its limits, and the event stream.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clustimage::daemon::{Daemon, DaemonHandle};
use clustimage::server::pb::clustimage_client::ClustimageClient;
use clustimage::server::pb::{self, find_similar_request::Query};
use clustimage::server::{self, ServerConfig};
use tonic::transport::Channel;
use tonic::Code;

use crate::common::{fixture, picture_of};
use crate::daemon::{config, photo_paths, start, wait_settled};

const DEADLINE: Duration = Duration::from_secs(60);

/// A daemon with its server on a free loopback port.
struct Served {
    daemon: Daemon,
    handle: DaemonHandle,
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), server::ServerError>>,
}

impl Served {
    async fn start(root: &Path, data: &Path, server_config: ServerConfig) -> Served {
        let (daemon, handle) = start(config(root, data)).await;
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let task = tokio::spawn(server::serve(handle.clone(), server_config, listener, shutdown));
        Served { daemon, handle, url, stop, task }
    }

    async fn client(&self) -> ClustimageClient<Channel> {
        ClustimageClient::connect(self.url.clone()).await.unwrap()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
        drop(self.handle);
        self.daemon.shutdown().await.unwrap();
    }
}

/// The daemon on a copy of the fixture photos, settled, with default server settings.
async fn served_photos() -> (tempfile::TempDir, tempfile::TempDir, Served) {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let served = Served::start(root.path(), data.path(), ServerConfig::default()).await;
    wait_settled(&served.handle, 12).await;
    (root, data, served)
}

fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn find(query: Query, k: u32) -> pb::FindSimilarRequest {
    pb::FindSimilarRequest { query: Some(query), k, alpha: None, max_distance: None }
}

/// The status of a failed call, asserting its code and that its message names `needle`.
fn assert_refused<T: std::fmt::Debug>(
    outcome: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    needle: &str,
) {
    let status = outcome.expect_err("the call should be refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(needle), "{needle:?} not in {:?}", status.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_similar_images_by_path_id_and_bytes() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;

    let status = client.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.images, status.files, status.pending, status.failed), (12, 12, 0, 0));
    let model = status.model.unwrap();
    assert_eq!(model.images, 12);
    assert_eq!(status.clusters, model.clusters);
    assert_eq!(status.counters.unwrap().decoded, 12);

    // For each recompressed photo, its half-size version is the nearest hit, asked three ways.
    for path in photo_paths(root.path()).iter().filter(|path| text(path).contains("_q35")) {
        let by_path = client.find_similar(find(Query::Path(text(path)), 3)).await.unwrap();
        let by_path = by_path.into_inner();
        assert_eq!(by_path.hits.len(), 3);
        assert!(by_path.hits.windows(2).all(|pair| pair[0].distance <= pair[1].distance));
        assert_eq!(picture_of(Path::new(&by_path.hits[0].path)), picture_of(path));
        assert!(by_path.hits.iter().all(|hit| hit.image_id != by_path.query_image_id));
        assert!(by_path.hits.iter().all(|hit| (0.0..=1.0).contains(&hit.p_value)));

        let id = by_path.query_image_id.clone();
        let by_id = client.find_similar(find(Query::ImageId(id), 3)).await.unwrap().into_inner();
        assert_eq!(by_id.hits, by_path.hits);

        // Uploaded, the same file is found in the library first, then the same hits.
        let bytes = std::fs::read(path).unwrap();
        let by_bytes = client.find_similar(find(Query::Image(bytes), 4)).await.unwrap();
        let by_bytes = by_bytes.into_inner();
        assert_eq!(by_bytes.query_image_id, by_path.query_image_id);
        assert_eq!(by_bytes.hits[0].image_id, by_path.query_image_id);
        assert!(by_bytes.hits[0].distance < 1e-3, "{:?}", by_bytes.hits[0]);
        assert_eq!(by_bytes.hits[1..], by_path.hits);
    }

    // alpha and max_distance only ever remove hits, and every hit left meets them.
    let query = text(&photo_paths(root.path())[0]);
    let all = client.find_similar(find(Query::Path(query.clone()), 11)).await.unwrap();
    let all = all.into_inner().hits;
    assert_eq!(all.len(), 11);
    let cut = all[4].distance;
    let mut request = find(Query::Path(query.clone()), 11);
    request.max_distance = Some(cut);
    let near = client.find_similar(request).await.unwrap().into_inner().hits;
    assert_eq!(near, all[..5]);
    let mut request = find(Query::Path(query), 11);
    request.alpha = Some(all[2].p_value);
    let significant = client.find_similar(request).await.unwrap().into_inner().hits;
    assert!(significant.len() >= 3 && significant.len() < 11, "{significant:?}");
    assert!(significant.iter().all(|hit| hit.p_value <= all[2].p_value));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_added_since_the_fit_is_found_by_its_point_in_the_index() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;
    // New bytes of a known picture: re-encoded smaller, so it is a new image.
    let source = &photo_paths(root.path())[0];
    let added = root.path().join("zz_added.png");
    image::open(source).unwrap().thumbnail(200, 200).save(&added).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = served.handle.status();
        if status.images == 13 && status.pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "never indexed: {status:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let by_path = client.find_similar(find(Query::Path(text(&added)), 4)).await.unwrap();
    let by_path = by_path.into_inner();
    let image = client.get_image(pb::GetImageRequest { path: text(&added) }).await.unwrap();
    assert!(image.into_inner().provisional, "placed since the fit");
    // Asked by path, the daemon searches with the point it inserted; asked with the bytes,
    // it projects them afresh: the same neighbours, the upload finding itself first.
    let bytes = std::fs::read(&added).unwrap();
    let by_bytes = client.find_similar(find(Query::Image(bytes), 5)).await.unwrap().into_inner();
    assert_eq!(by_bytes.hits[0].image_id, by_path.query_image_id);
    assert_eq!(by_bytes.hits[1..], by_path.hits);
    assert_eq!(picture_of(Path::new(&by_path.hits[0].path)), picture_of(source));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_page_through_every_image_and_representatives_belong_to_their_cluster() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;

    let mut clusters = Vec::new();
    let mut page_token = String::new();
    let mut n_pages = 0;
    loop {
        let request = pb::ListClustersRequest { page_size: 2, page_token, members_per_cluster: 1 };
        let page = client.list_clusters(request).await.unwrap().into_inner();
        assert!(page.clusters.len() <= 2);
        assert!(page.clusters.iter().all(|cluster| cluster.members.len() <= 1));
        n_pages += 1;
        clusters.extend(page.clusters);
        if page.next_page_token.is_empty() {
            assert_eq!(page.total_clusters as usize, clusters.len());
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(n_pages, clusters.len().div_ceil(2));
    let ids: Vec<i32> = clusters.iter().map(|cluster| cluster.id).collect();
    assert_eq!(ids, (0..clusters.len() as i32).collect::<Vec<_>>());
    assert!(clusters.windows(2).all(|pair| pair[0].size >= pair[1].size), "largest first");
    assert_eq!(clusters.iter().map(|cluster| cluster.size).sum::<u64>(), 12);

    // GetCluster pages through all members of each cluster, one at a time.
    let mut every_member = std::collections::BTreeSet::new();
    for cluster in &clusters {
        let mut members = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::GetClusterRequest { id: cluster.id, page_size: 1, page_token };
            let page = client.get_cluster(request).await.unwrap().into_inner();
            assert_eq!(page.size, cluster.size);
            members.extend(page.members);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!(members.len() as u64, cluster.size);
        every_member.extend(members.into_iter().map(|member| member.path));
    }
    assert_eq!(every_member.len(), 12);

    // Each representative is a member of its own cluster, as GetImage confirms.
    let unique = client.list_unique(pb::ListUniqueRequest {}).await.unwrap().into_inner();
    assert_eq!(unique.clusters.len(), clusters.len());
    for entry in &unique.clusters {
        let representative = entry.representative.as_ref().unwrap();
        let request = pb::GetImageRequest { path: representative.path.clone() };
        let image = client.get_image(request).await.unwrap().into_inner();
        assert_eq!(image.cluster, entry.id);
        assert_eq!(image.image_id, representative.image_id);
    }

    // A token stays good across a refit of the same images, which gives the same model...
    let request = pb::ListClustersRequest { page_size: 1, ..Default::default() };
    let token = client.list_clusters(request).await.unwrap().into_inner().next_page_token;
    let refit = client.refit(pb::RefitRequest { wait: true }).await.unwrap().into_inner();
    assert!(refit.done);
    assert_eq!(refit.images, 12);
    let request = pb::ListClustersRequest { page_token: token.clone(), ..Default::default() };
    assert!(client.list_clusters(request).await.is_ok());
    // ...and is refused after a refit over other images, since clusters are renumbered.
    let added = root.path().join("added.jpg");
    std::fs::copy(fixture("exif/046_ColorfulCups_half_exif.jpg"), &added).unwrap();
    let request = pb::IngestRequest { path: text(&added), wait: true };
    client.ingest(request).await.unwrap();
    let refit = client.refit(pb::RefitRequest { wait: true }).await.unwrap().into_inner();
    assert_eq!(refit.images, 13);
    let stale = token;
    let request = pb::ListClustersRequest { page_token: stale, ..Default::default() };
    assert_refused(client.list_clusters(request).await, Code::InvalidArgument, "page_token");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_image_tells_content_hashes_state_and_failure() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;
    let exif_photo = root.path().join("exif.jpg");
    let exif_source = fixture("exif/046_ColorfulCups_half_exif.jpg");
    std::fs::copy(&exif_source, &exif_photo).unwrap();
    let broken = root.path().join("broken.jpg");
    std::fs::write(&broken, b"\xff\xd8\xff\xe0 not really a jpeg").unwrap();
    let request = pb::IngestRequest { path: text(root.path()), wait: true };
    let ingested = client.ingest(request).await.unwrap().into_inner();
    assert!(ingested.done);

    let image = client.get_image(pb::GetImageRequest { path: text(&exif_photo) }).await.unwrap();
    let image = image.into_inner();
    assert_eq!(image.state(), pb::FileState::Indexed);
    assert_eq!(image.image_id.len(), 64);
    assert_eq!(image.file_size_bytes, std::fs::metadata(&exif_photo).unwrap().len());
    assert!(image.width_px > 0 && image.height_px > 0);
    assert_eq!(image.format, "jpg");
    let kinds: Vec<&str> = image.hashes.iter().map(|hash| hash.kind.as_str()).collect();
    assert_eq!(kinds, ["average", "difference", "perceptual", "wavelet"]);
    assert!(image.hashes.iter().all(|hash| hash.hex.len() == 16));
    let exif = image.exif.expect("the photo has EXIF fields");
    assert!(!exif.camera_make.is_empty() || exif.taken_at_unix_s.is_some(), "{exif:?}");
    assert!(image.cluster >= 0, "placed in a cluster since the fit");
    assert!(image.provisional);

    let failed = client.get_image(pb::GetImageRequest { path: text(&broken) }).await.unwrap();
    let failed = failed.into_inner();
    assert_eq!(failed.state(), pb::FileState::Failed);
    assert_eq!(failed.failure_kind, "corrupt");
    assert!(failed.failure_reason.contains("broken.jpg"), "{}", failed.failure_reason);
    assert!(failed.image_id.is_empty());
    assert_eq!(failed.cluster, -1);

    let status = client.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.failed_by_kind.get("corrupt"), Some(&1));
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_unknown_ids_and_paths_outside_the_roots_are_refused() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;
    let photo = photo_paths(root.path())[0].clone();

    let no_query = pb::FindSimilarRequest::default();
    assert_refused(client.find_similar(no_query).await, Code::InvalidArgument, "query");
    let too_many = find(Query::Path(text(&photo)), 5000);
    assert_refused(client.find_similar(too_many).await, Code::InvalidArgument, "k");
    let mut bad_alpha = find(Query::Path(text(&photo)), 5);
    bad_alpha.alpha = Some(1.5);
    assert_refused(client.find_similar(bad_alpha).await, Code::InvalidArgument, "alpha");
    let mut bad_distance = find(Query::Path(text(&photo)), 5);
    bad_distance.max_distance = Some(-1.0);
    let outcome = client.find_similar(bad_distance).await;
    assert_refused(outcome, Code::InvalidArgument, "max_distance");
    let bad_id = find(Query::ImageId("not-hex".into()), 5);
    assert_refused(client.find_similar(bad_id).await, Code::InvalidArgument, "image_id");
    let unknown_id = find(Query::ImageId("0".repeat(64)), 5);
    assert_refused(client.find_similar(unknown_id).await, Code::NotFound, "unknown image");
    let not_an_image = find(Query::Image(b"hello, world".to_vec()), 5);
    assert_refused(client.find_similar(not_an_image).await, Code::InvalidArgument, "image");
    let relative = find(Query::Path("photos/a.jpg".into()), 5);
    assert_refused(client.find_similar(relative).await, Code::InvalidArgument, "path");

    // Outside the roots: plainly, through `..`, and through a link that points out.
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.jpg");
    std::fs::copy(&photo, &secret).unwrap();
    let escape =
        root.path().join("..").join(outside.path().file_name().unwrap()).join("secret.jpg");
    let link = root.path().join("link.jpg");
    std::os::unix::fs::symlink(&secret, &link).unwrap();
    for path in [&secret, &escape, &link] {
        let request = find(Query::Path(text(path)), 5);
        let outcome = client.find_similar(request).await;
        assert_refused(outcome, Code::PermissionDenied, "not under a watched folder");
        let request = pb::GetImageRequest { path: text(path) };
        let outcome = client.get_image(request).await;
        assert_refused(outcome, Code::PermissionDenied, "not under a watched folder");
        let request = pb::IngestRequest { path: text(path), wait: false };
        assert_refused(client.ingest(request).await, Code::PermissionDenied, "watched");
    }

    let unknown = pb::GetImageRequest { path: text(&root.path().join("nothing-here.jpg")) };
    assert_refused(client.get_image(unknown).await, Code::NotFound, "nothing-here.jpg");
    assert_refused(
        client.get_image(pb::GetImageRequest::default()).await,
        Code::InvalidArgument,
        "path",
    );
    let missing = pb::IngestRequest { path: text(&root.path().join("gone")), wait: false };
    assert_refused(client.ingest(missing).await, Code::InvalidArgument, "path");

    let negative = pb::GetClusterRequest { id: -1, ..Default::default() };
    assert_refused(client.get_cluster(negative).await, Code::InvalidArgument, "id");
    let unknown = pb::GetClusterRequest { id: 999, ..Default::default() };
    assert_refused(client.get_cluster(unknown).await, Code::NotFound, "cluster 999");
    let huge = pb::ListClustersRequest { page_size: 5000, ..Default::default() };
    assert_refused(client.list_clusters(huge).await, Code::InvalidArgument, "page_size");
    let forged = pb::ListClustersRequest { page_token: "abc".into(), ..Default::default() };
    assert_refused(client.list_clusters(forged).await, Code::InvalidArgument, "page_token");
    let members = pb::ListClustersRequest { members_per_cluster: 5000, ..Default::default() };
    let outcome = client.list_clusters(members).await;
    assert_refused(outcome, Code::InvalidArgument, "members_per_cluster");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_that_need_a_model_say_so_before_the_first_fit() {
    let root = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let photo = root.path().join("only.jpg");
    std::fs::copy(&photo_paths(&fixture("photos"))[0], &photo).unwrap();
    let served = Served::start(root.path(), data.path(), ServerConfig::default()).await;
    let mut client = served.client().await;
    let request = pb::IngestRequest { path: text(root.path()), wait: true };
    client.ingest(request).await.unwrap();
    let status = client.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    assert_eq!((status.images, status.clusters), (1, 0));
    assert!(status.model.is_none());
    let outcome = client.find_similar(find(Query::Path(text(&photo)), 3)).await;
    assert_refused(outcome, Code::FailedPrecondition, "no model yet");
    let outcome = client.list_clusters(pb::ListClustersRequest::default()).await;
    assert_refused(outcome, Code::FailedPrecondition, "no model yet");
    let outcome = client.refit(pb::RefitRequest { wait: true }).await;
    assert_refused(outcome, Code::FailedPrecondition, "too few");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_needed_on_every_call_but_health() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let server_config = ServerConfig { token: Some("t0ken".into()), ..ServerConfig::default() };
    let served = Served::start(root.path(), data.path(), server_config).await;

    let mut anonymous = served.client().await;
    let outcome = anonymous.get_status(pb::GetStatusRequest {}).await;
    assert_refused(outcome, Code::Unauthenticated, "authorization");
    let wrong = server::client::connect(&served.url, Some("guess")).await.unwrap();
    let outcome = wrong.clone().get_status(pb::GetStatusRequest {}).await;
    assert_refused(outcome, Code::Unauthenticated, "wrong token");
    let mut right = server::client::connect(&served.url, Some("t0ken")).await.unwrap();
    assert!(right.get_status(pb::GetStatusRequest {}).await.is_ok());

    let channel = Channel::from_shared(served.url.clone()).unwrap().connect().await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    let answer = health.check(request).await.unwrap().into_inner();
    assert_eq!(answer.status(), tonic_health::pb::health_check_response::ServingStatus::Serving);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_size_limit_is_resource_exhausted() {
    let (_root, data, served) = served_photos().await;
    let url = served.url.clone();
    served.stop().await;
    // The same library, now served with a 64 KiB message limit.
    let root = crate::common::photo_folder();
    let limits = ServerConfig { max_message_bytes: 64 * 1024, ..ServerConfig::default() };
    let served = Served::start(root.path(), data.path(), limits).await;
    assert_ne!(served.url, url);
    wait_settled(&served.handle, 12).await;
    let mut client = served.client().await;
    let large = vec![0xffu8; 200 * 1024];
    let outcome = client.find_similar(find(Query::Image(large), 3)).await;
    assert_refused(outcome, Code::ResourceExhausted, "message too large");
    // A small upload still goes through on the same connection.
    let small = std::fs::read(photo_paths(root.path())[0].clone()).unwrap();
    assert!(small.len() < 64 * 1024);
    assert!(client.find_similar(find(Query::Image(small), 3)).await.is_ok());
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_streams_past_their_limits_are_resource_exhausted() {
    let root = crate::common::photo_folder();
    let data = tempfile::tempdir().unwrap();
    let limits =
        ServerConfig { max_concurrent_calls: 1, max_event_streams: 1, ..ServerConfig::default() };
    let served = Served::start(root.path(), data.path(), limits).await;
    wait_settled(&served.handle, 12).await;
    let mut client = served.client().await;

    // One stream is allowed; a second is refused until the first hangs up.
    let first = client.watch_events(pb::WatchEventsRequest {}).await.unwrap();
    let outcome = client.watch_events(pb::WatchEventsRequest {}).await;
    assert_refused(outcome, Code::ResourceExhausted, "event streams");
    drop(first);
    eventually("a stream allowed again", || async {
        client.clone().watch_events(pb::WatchEventsRequest {}).await.is_ok()
    })
    .await;

    // Many uploads at once, each decoded while it holds the one permit: some are refused,
    // none fails otherwise, and the server answers normally afterwards.
    let photo = largest_photo();
    let calls: Vec<_> = (0..24)
        .map(|_| {
            let mut client = client.clone();
            let request = find(Query::Image(std::fs::read(&photo).unwrap()), 3);
            tokio::spawn(async move { client.find_similar(request).await })
        })
        .collect();
    let mut codes = Vec::new();
    for call in calls {
        codes.push(call.await.unwrap().map_or_else(|status| status.code(), |_| Code::Ok));
    }
    let refused = codes.iter().filter(|code| **code == Code::ResourceExhausted).count();
    assert!(refused > 0, "{codes:?}");
    assert!(codes.iter().all(|code| matches!(code, Code::ResourceExhausted | Code::Ok)));
    assert!(codes.contains(&Code::Ok), "{codes:?}");
    assert!(client.get_status(pb::GetStatusRequest {}).await.is_ok());
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_sees_a_file_added_to_a_watched_folder() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;
    let mut events = client.watch_events(pb::WatchEventsRequest {}).await.unwrap().into_inner();
    let source = fixture("exif/046_ColorfulCups_half_exif.jpg");
    let added: PathBuf = root.path().join("new.jpg");
    std::fs::copy(&source, &added).unwrap();
    let started = Instant::now();
    let event = loop {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let next = tokio::time::timeout(left, events.message()).await.expect("an event in time");
        let event = next.unwrap().expect("the stream stays open");
        if let Some(pb::event::Kind::Added(added)) = event.kind {
            break added;
        }
    };
    assert_eq!(event.path, text(&added));
    assert!(event.decoded);
    let request = pb::GetImageRequest { path: text(&added) };
    let image = client.get_image(request).await.unwrap().into_inner();
    assert_eq!(image.image_id, event.image_id);
    served.stop().await;
}

/// The largest fixture photo: the slowest to decode.
fn largest_photo() -> PathBuf {
    let size = |path: &PathBuf| std::fs::metadata(path).unwrap().len();
    photo_paths(&fixture("photos")).into_iter().max_by_key(size).unwrap()
}

/// Polls `condition` until it holds; the deadline only guards against a hang.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, condition: impl Fn() -> F) {
    let started = Instant::now();
    while !condition().await {
        assert!(started.elapsed() < DEADLINE, "never {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_listed_paged_marked_and_announced() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;
    let list = |kind: pb::DuplicateKind, page_size: u32, page_token: String| {
        pb::ListDuplicatesRequest { kind: kind.into(), page_size, page_token }
    };
    // The fixtures hold four pictures twice (half size, and JPEG quality 35).
    let all = client.list_duplicates(list(pb::DuplicateKind::Unspecified, 0, String::new()));
    let all = all.await.unwrap().into_inner();
    assert_eq!(all.total_groups, 4, "{all:#?}");
    for group in &all.groups {
        assert_eq!(group.kind(), pb::DuplicateKind::Duplicate);
        assert_eq!(group.paths.len(), 2);
        assert_eq!(group.keeper, group.paths[0]);
        // The keeper is the copy with more pixels (the quality-35 one is full size).
        let pixels: Vec<u32> = group
            .paths
            .iter()
            .map(|path| image::image_dimensions(path).map(|(w, h)| w * h).unwrap())
            .collect();
        assert!(pixels[0] > pixels[1], "{group:#?}");
        assert!(group.keeper.contains("_q35"), "{group:#?}");
        assert_eq!(picture_of(Path::new(&group.paths[0])), picture_of(Path::new(&group.paths[1])));
        assert_eq!(group.pairs.len(), 1);
    }
    // Page by page, the same groups.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.list_duplicates(list(pb::DuplicateKind::Similar, 1, token));
        let page = page.await.unwrap().into_inner();
        paged.extend(page.groups);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged.len(), 4);
    let exact = client.list_duplicates(list(pb::DuplicateKind::Exact, 0, String::new()));
    assert_eq!(exact.await.unwrap().into_inner().total_groups, 0);
    let bad_kind = pb::ListDuplicatesRequest { kind: 99, page_size: 0, page_token: String::new() };
    assert_refused(client.list_duplicates(bad_kind).await, Code::InvalidArgument, "kind");

    // A verdict on one group: it is gone, and a token of the old listing is refused.
    let first_page = client.list_duplicates(list(pb::DuplicateKind::Duplicate, 1, String::new()));
    let stale_token = first_page.await.unwrap().into_inner().next_page_token;
    let marked = all.groups[0].paths.clone();
    let request = pb::MarkNotDuplicateRequest { paths: marked.clone() };
    let answer = client.mark_not_duplicate(request).await.unwrap().into_inner();
    assert_eq!((answer.pairs, answer.links_removed), (1, 1));
    let after = client.list_duplicates(list(pb::DuplicateKind::Similar, 0, String::new()));
    let after = after.await.unwrap().into_inner();
    assert_eq!(after.total_groups, 3);
    assert!(after.groups.iter().all(|group| !group.paths.contains(&marked[0])));
    let stale = client.list_duplicates(list(pb::DuplicateKind::Duplicate, 1, stale_token));
    assert_refused(stale.await, Code::InvalidArgument, "changed");
    let one = pb::MarkNotDuplicateRequest { paths: vec![marked[0].clone()] };
    assert_refused(client.mark_not_duplicate(one).await, Code::InvalidArgument, "paths");
    let outside = pb::MarkNotDuplicateRequest {
        paths: vec![marked[0].clone(), text(&fixture("photos/030_Garden_half.jpg"))],
    };
    assert_refused(client.mark_not_duplicate(outside).await, Code::PermissionDenied, "watched");

    // New arrivals: an exact copy, and a mirrored copy of another picture.
    let mut events = client.watch_events(pb::WatchEventsRequest {}).await.unwrap().into_inner();
    let original = root.path().join("030_Garden_half.jpg");
    let copy = root.path().join("garden copy.jpg");
    std::fs::copy(&original, &copy).unwrap();
    let source = root.path().join("070_PastelHills-3200x2000_half.jpg");
    let mirrored = root.path().join("hills mirrored.png");
    image::open(&source).unwrap().fliph().save(&mirrored).unwrap();
    let mut found = std::collections::HashMap::new();
    let started = Instant::now();
    while found.len() < 2 {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let next = tokio::time::timeout(left, events.message()).await.expect("an event in time");
        if let Some(pb::event::Kind::Duplicate(duplicate)) = next.unwrap().unwrap().kind {
            found.insert(duplicate.path.clone(), duplicate);
        }
    }
    let exact = &found[&text(&copy)].matches[0];
    assert_eq!((exact.kind(), exact.distance), (pb::DuplicateKind::Exact, 0));
    assert_eq!(exact.paths, vec![text(&original)]);
    let turned = &found[&text(&mirrored)].matches[0];
    assert_eq!(turned.kind(), pb::DuplicateKind::Duplicate);
    assert_eq!(turned.paths, vec![text(&source)]);
    let status = client.get_status(pb::GetStatusRequest {}).await.unwrap().into_inner();
    // The second copy of each of the four pictures at the first scan, and these two.
    assert_eq!(status.counters.unwrap().duplicates_found, 4 + 2);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_writes_the_report_of_its_library() {
    let (root, _data, served) = served_photos().await;
    let mut client = served.client().await;
    let out = tempfile::tempdir().unwrap();
    let folder = out.path().join("report");
    let request = pb::WriteReportRequest { out_dir: text(&folder), all_thumbnails: false };
    let written = client.write_report(request).await.unwrap().into_inner();
    assert_eq!(written.images, 12);
    assert_eq!(written.index, text(&folder.join("index.html")));
    assert!(written.files.len() > 5, "{written:#?}");
    for file in &written.files {
        assert!(Path::new(file).is_file(), "{file} was not written");
    }
    // The cluster pages show the photos themselves, read again from their files.
    let pages: Vec<&String> = written.files.iter().filter(|f| f.contains("cluster-")).collect();
    assert!(!pages.is_empty(), "{written:#?}");
    for png in written.files.iter().filter(|file| file.ends_with(".png")) {
        crate::report::check_png(Path::new(png), None);
    }
    crate::report::check_links(&folder);
    // The four pictures held twice, as groups of duplicates with their keeper.
    let duplicates = folder.join("duplicates.png");
    assert!(written.files.contains(&text(&duplicates)), "{written:#?}");
    let index = std::fs::read_to_string(folder.join("index.html")).unwrap();
    assert!(index.contains("duplicates.png") && index.contains("Duplicates"));
    let figure = image::open(&duplicates).unwrap();
    assert!(
        figure.width() >= 640 && figure.height() > 200,
        "{}x{}",
        figure.width(),
        figure.height()
    );

    let inside =
        pb::WriteReportRequest { out_dir: text(&root.path().join("r")), ..Default::default() };
    assert_refused(client.write_report(inside).await, Code::InvalidArgument, "out_dir");
    let relative = pb::WriteReportRequest { out_dir: "report".into(), ..Default::default() };
    assert_refused(client.write_report(relative).await, Code::InvalidArgument, "out_dir");
    served.stop().await;
}
