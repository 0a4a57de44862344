//! The `clustimage.v1.Clustimage` handlers: each checks its request, calls the daemon and
//! converts the answer. Limits and logging wrap every call the same way ([`Api::unary`]).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::error::{log_outcome, ApiError};
use super::{convert, pb, ServerConfig};
use crate::daemon::query::ClusterList;
use crate::daemon::{DaemonHandle, ImageQuery, SimilarQuery};
use crate::dedup::MatchKind;
use crate::report::ReportOptions;
use crate::store::ContentId;

/// Hits when a request leaves `k` at 0.
const DEFAULT_HITS: usize = 10;
/// Items per page when a request leaves `page_size` at 0, and the most per page.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// Events queued for one stream's client before the forwarder waits for it.
const STREAM_BUFFER: usize = 64;
/// Members listed with each cluster by `ListClusters` when the request leaves it at 0.
const DEFAULT_MEMBERS_PER_CLUSTER: usize = 10;

/// The service: a daemon handle and the permits that bound concurrent work.
#[derive(Debug)]
pub struct Api {
    daemon: DaemonHandle,
    calls: Arc<Semaphore>,
    max_calls: usize,
    streams: Arc<Semaphore>,
    max_streams: usize,
    /// Turns true when the server begins to stop: event streams end then, since they would
    /// otherwise hold the graceful shutdown open for ever.
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Api {
    pub fn new(
        daemon: DaemonHandle,
        config: &ServerConfig,
        closing: tokio::sync::watch::Receiver<bool>,
    ) -> Api {
        Api {
            daemon,
            calls: Arc::new(Semaphore::new(config.max_concurrent_calls)),
            max_calls: config.max_concurrent_calls,
            streams: Arc::new(Semaphore::new(config.max_event_streams)),
            max_streams: config.max_event_streams,
            closing,
        }
    }

    /// Runs one unary call under a permit, refusing it when none is free, and logs it.
    async fn unary<T>(
        &self,
        call: &'static str,
        work: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<Response<T>, Status> {
        let started = Instant::now();
        let outcome = match self.calls.try_acquire() {
            Ok(_permit) => work.await.map_err(Status::from),
            Err(_) => Err(ApiError::Busy { limit: self.max_calls, what: "calls" }.into()),
        };
        log_outcome(call, started.elapsed(), outcome.as_ref().map(|_| ()));
        outcome.map(Response::new)
    }

    fn clusters(&self) -> Result<ClusterList, ApiError> {
        Ok(self.daemon.cluster_list()?)
    }

    fn image_ref(&self, content: &ContentId) -> pb::ImageRef {
        convert::image_ref(content, &self.daemon.paths_of(content))
    }

    fn cluster(
        &self,
        summary: &crate::daemon::ClusterSummary,
        members: &[ContentId],
        next_page_token: String,
    ) -> pb::Cluster {
        pb::Cluster {
            id: convert::cluster_id(Some(summary.id)),
            size: summary.members.len() as u64,
            representative: summary.representative.as_ref().map(|content| self.image_ref(content)),
            members: members.iter().map(|content| self.image_ref(content)).collect(),
            next_page_token,
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

#[tonic::async_trait]
impl pb::clustimage_server::Clustimage for Api {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::Status>, Status> {
        self.unary("GetStatus", async { Ok(convert::status(&self.daemon.status())) }).await
    }

    async fn find_similar(
        &self,
        request: Request<pb::FindSimilarRequest>,
    ) -> Result<Response<pb::FindSimilarResponse>, Status> {
        let request = request.into_inner();
        self.unary("FindSimilar", async {
            let image = match request.query {
                None => return Err(ApiError::invalid("query", "give a path, image or image_id")),
                Some(pb::find_similar_request::Query::Path(path)) => {
                    ImageQuery::Path(required_path("path", &path)?)
                }
                Some(pb::find_similar_request::Query::Image(bytes)) if bytes.is_empty() => {
                    return Err(ApiError::invalid("image", "is empty"));
                }
                Some(pb::find_similar_request::Query::Image(bytes)) => ImageQuery::Bytes(bytes),
                Some(pb::find_similar_request::Query::ImageId(id)) => {
                    ImageQuery::Content(content_id("image_id", &id)?)
                }
            };
            let k = if request.k == 0 { DEFAULT_HITS } else { request.k as usize };
            let query = SimilarQuery::new(image, k, request.alpha, request.max_distance)?;
            Ok(convert::similar(self.daemon.find_similar(query).await?))
        })
        .await
    }

    async fn list_clusters(
        &self,
        request: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        let request = request.into_inner();
        self.unary("ListClusters", async {
            let page_size = page_size("page_size", request.page_size)?;
            let n_members = match request.members_per_cluster as usize {
                0 => DEFAULT_MEMBERS_PER_CLUSTER,
                n if n > MAX_PAGE => {
                    let message = format!("must be at most {MAX_PAGE}, got {n}");
                    return Err(ApiError::invalid("members_per_cluster", message));
                }
                n => n,
            };
            let list = self.clusters()?;
            let page = Page::of(&list, &request.page_token, page_size, list.clusters.len())?;
            let clusters = list.clusters[page.range()]
                .iter()
                .map(|summary| {
                    let shown = &summary.members[..summary.members.len().min(n_members)];
                    self.cluster(summary, shown, String::new())
                })
                .collect();
            Ok(pb::ListClustersResponse {
                clusters,
                next_page_token: page.next_token(&list),
                total_clusters: list.clusters.len() as u64,
            })
        })
        .await
    }

    async fn get_cluster(
        &self,
        request: Request<pb::GetClusterRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        let request = request.into_inner();
        self.unary("GetCluster", async {
            if request.id < 0 {
                return Err(ApiError::invalid("id", format!("must be >= 0, got {}", request.id)));
            }
            let page_size = page_size("page_size", request.page_size)?;
            let list = self.clusters()?;
            let n_clusters = list.clusters.len();
            let summary = list
                .clusters
                .get(request.id as usize)
                .ok_or(ApiError::UnknownCluster { id: request.id, n_clusters })?;
            let page = Page::of(&list, &request.page_token, page_size, summary.members.len())?;
            Ok(self.cluster(summary, &summary.members[page.range()], page.next_token(&list)))
        })
        .await
    }

    async fn list_unique(
        &self,
        _request: Request<pb::ListUniqueRequest>,
    ) -> Result<Response<pb::ListUniqueResponse>, Status> {
        self.unary("ListUnique", async {
            let list = self.clusters()?;
            let clusters = list
                .clusters
                .iter()
                .filter_map(|summary| {
                    let representative = summary.representative.as_ref()?;
                    Some(pb::UniqueImage {
                        id: convert::cluster_id(Some(summary.id)),
                        size: summary.members.len() as u64,
                        representative: Some(self.image_ref(representative)),
                    })
                })
                .collect();
            Ok(pb::ListUniqueResponse { clusters })
        })
        .await
    }

    async fn get_image(
        &self,
        request: Request<pb::GetImageRequest>,
    ) -> Result<Response<pb::Image>, Status> {
        let request = request.into_inner();
        self.unary("GetImage", async {
            let path = required_path("path", &request.path)?;
            Ok(convert::image(self.daemon.image_info(&path)?))
        })
        .await
    }

    async fn ingest(
        &self,
        request: Request<pb::IngestRequest>,
    ) -> Result<Response<pb::IngestResponse>, Status> {
        let request = request.into_inner();
        self.unary("Ingest", async {
            let path = required_path("path", &request.path)?;
            if !path.exists() {
                let message = format!("{} does not exist", path.display());
                return Err(ApiError::invalid("path", message));
            }
            self.daemon.ingest(&path, request.wait).await?;
            Ok(pb::IngestResponse { done: request.wait })
        })
        .await
    }

    async fn refit(
        &self,
        request: Request<pb::RefitRequest>,
    ) -> Result<Response<pb::RefitResponse>, Status> {
        let request = request.into_inner();
        self.unary("Refit", async {
            let summary = self.daemon.refit(request.wait).await?;
            Ok(match summary {
                Some(summary) => pb::RefitResponse {
                    done: true,
                    images: summary.images,
                    clusters: summary.clusters,
                    duration_s: summary.duration_s,
                },
                None => pb::RefitResponse::default(),
            })
        })
        .await
    }

    type WatchEventsStream = EventStream;

    async fn list_duplicates(
        &self,
        request: Request<pb::ListDuplicatesRequest>,
    ) -> Result<Response<pb::ListDuplicatesResponse>, Status> {
        let request = request.into_inner();
        self.unary("ListDuplicates", async {
            let kind = pb::DuplicateKind::try_from(request.kind)
                .map_err(|_| ApiError::invalid("kind", format!("unknown kind {}", request.kind)))?;
            let page_size = page_size("page_size", request.page_size)?;
            // The weakest kind listed; unspecified means duplicates and exact copies.
            let weakest = kind.match_kind().unwrap_or(MatchKind::Duplicate);
            let list = self.daemon.duplicate_list(weakest)?;
            let stale = "the duplicates changed since this token was issued: start again";
            let page =
                Page::tagged(&list.tag, stale, &request.page_token, page_size, list.groups.len())?;
            Ok(pb::ListDuplicatesResponse {
                groups: list.groups[page.range()].iter().map(convert::duplicate_group).collect(),
                next_page_token: page.next_tagged(&list.tag),
                total_groups: list.groups.len() as u64,
            })
        })
        .await
    }

    async fn mark_not_duplicate(
        &self,
        request: Request<pb::MarkNotDuplicateRequest>,
    ) -> Result<Response<pb::MarkNotDuplicateResponse>, Status> {
        let request = request.into_inner();
        self.unary("MarkNotDuplicate", async {
            if request.paths.len() > MAX_PAGE {
                let message = format!("at most {MAX_PAGE} files, got {}", request.paths.len());
                return Err(ApiError::invalid("paths", message));
            }
            let paths = request
                .paths
                .iter()
                .map(|path| required_path("paths", path))
                .collect::<Result<Vec<PathBuf>, ApiError>>()?;
            let daemon = self.daemon.clone();
            let marked = tokio::task::spawn_blocking(move || daemon.mark_not_duplicate(&paths))
                .await
                .expect("marking does not panic")?;
            Ok(pb::MarkNotDuplicateResponse {
                pairs: marked.pairs,
                links_removed: marked.links_removed,
            })
        })
        .await
    }

    async fn write_report(
        &self,
        request: Request<pb::WriteReportRequest>,
    ) -> Result<Response<pb::WriteReportResponse>, Status> {
        let request = request.into_inner();
        self.unary("WriteReport", async {
            let folder = required_path("out_dir", &request.out_dir)?;
            let options = ReportOptions { all_thumbnails: request.all_thumbnails };
            let daemon = self.daemon.clone();
            let written =
                tokio::task::spawn_blocking(move || daemon.write_report(&folder, &options))
                    .await
                    .expect("writing a report does not panic")?;
            let text = |path: &std::path::Path| path.to_string_lossy().into_owned();
            Ok(pb::WriteReportResponse {
                index: text(&written.index),
                files: written.files.iter().map(|path| text(path)).collect(),
                images: written.images as u64,
            })
        })
        .await
    }

    async fn watch_events(
        &self,
        _request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<EventStream>, Status> {
        let started = Instant::now();
        let Ok(permit) = Arc::clone(&self.streams).try_acquire_owned() else {
            let status =
                Status::from(ApiError::Busy { limit: self.max_streams, what: "event streams" });
            log_outcome("WatchEvents", started.elapsed(), Err(&status));
            return Err(status);
        };
        let (sender, receiver) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        tokio::spawn(forward_events(self.daemon.subscribe(), sender, self.closing.clone(), permit));
        log_outcome("WatchEvents", started.elapsed(), Ok(()));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(receiver))))
    }
}

/// Copies the daemon's events to one client until it hangs up or the server stops; the
/// stream's permit is held until then. A client too slow for the broadcast buffer is told
/// how many events it missed, and the stream goes on.
async fn forward_events(
    mut events: tokio::sync::broadcast::Receiver<crate::daemon::Event>,
    sender: tokio::sync::mpsc::Sender<Result<pb::Event, Status>>,
    mut closing: tokio::sync::watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let received = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => break,
            _ = sender.closed() => break,
            received = events.recv() => received,
        };
        let message = match received {
            Ok(event) => convert::event(event),
            Err(RecvError::Lagged(count)) => convert::missed(count),
            Err(RecvError::Closed) => break,
        };
        if sender.send(Ok(message)).await.is_err() {
            break;
        }
    }
}

/// One page over `n_items`, checked against the model the token was issued for.
#[derive(Debug, Clone, Copy)]
struct Page {
    start: usize,
    end: usize,
    n_items: usize,
}

impl Page {
    fn of(list: &ClusterList, token: &str, size: usize, n_items: usize) -> Result<Page, ApiError> {
        let stale = "the model was refitted since this token was issued: start again";
        Page::tagged(&list.model_tag, stale, token, size, n_items)
    }

    /// A page of a listing named by `tag`; a token of another tag is refused with `stale`.
    fn tagged(
        tag: &str,
        stale: &'static str,
        token: &str,
        size: usize,
        n_items: usize,
    ) -> Result<Page, ApiError> {
        let start = if token.is_empty() { 0 } else { parse_token(tag, stale, token)? };
        if start > n_items {
            return Err(ApiError::invalid("page_token", "points past the last page"));
        }
        Ok(Page { start, end: (start + size).min(n_items), n_items })
    }

    fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    fn next_token(&self, list: &ClusterList) -> String {
        self.next_tagged(&list.model_tag)
    }

    fn next_tagged(&self, tag: &str) -> String {
        if self.end < self.n_items {
            format!("{tag}.{}", self.end)
        } else {
            String::new()
        }
    }
}

/// A token is `<tag>.<offset>`, the tag naming the state of the listing (the model for
/// clusters, which every refit renumbers); one of another state is refused.
fn parse_token(tag: &str, stale: &'static str, token: &str) -> Result<usize, ApiError> {
    let malformed = || ApiError::invalid("page_token", "not a token this server issued");
    let (token_tag, offset) = token.split_once('.').ok_or_else(malformed)?;
    if token_tag != tag {
        return Err(ApiError::invalid("page_token", stale));
    }
    offset.parse().map_err(|_| malformed())
}

fn page_size(field: &'static str, requested: u32) -> Result<usize, ApiError> {
    match requested as usize {
        0 => Ok(DEFAULT_PAGE),
        n if n > MAX_PAGE => {
            Err(ApiError::invalid(field, format!("must be at most {MAX_PAGE}, got {n}")))
        }
        n => Ok(n),
    }
}

fn required_path(field: &'static str, path: &str) -> Result<PathBuf, ApiError> {
    if path.is_empty() {
        return Err(ApiError::invalid(field, "is required"));
    }
    if path.contains('\0') {
        return Err(ApiError::invalid(field, "contains a NUL byte"));
    }
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        let message = format!("{} is not an absolute path", path.display());
        return Err(ApiError::invalid(field, message));
    }
    Ok(path)
}

fn content_id(field: &'static str, text: &str) -> Result<ContentId, ApiError> {
    if text.len() != 64 {
        let message = format!("must be 64 hexadecimal digits, got {} characters", text.len());
        return Err(ApiError::invalid(field, message));
    }
    ContentId::from_hex(text).ok_or_else(|| ApiError::invalid(field, "is not hexadecimal"))
}
