//! The questions a running library answers, in the daemon's own terms: images like a
//! query, what is known about a path, the clusters and the duplicates as they stand; and
//! the verdicts a person gives on duplicates.
//!
//! These are what the gRPC layer calls; they take validated requests and return plain
//! values (paths, content ids, store records), never store or array types. Decoding a
//! query image runs on a blocking thread; everything else reads the catalog and the view
//! under short read locks and never waits for the coordinator or a refit.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::duplicates::ContentGroup;
use super::library::{ClusterSummary, QueryError, View};
use super::{DaemonError, DaemonHandle};
use crate::dedup::{choose_keeper, MatchKind};
use crate::store::{ContentId, ContentRecord, FileRecord, FileState, Verdict};

/// The most hits one similarity query may ask for.
pub const MAX_HITS: usize = 1000;

/// What a similarity query is about.
#[derive(Debug, Clone)]
pub enum ImageQuery {
    /// A file under a watched root: looked up when known, else read and described.
    Path(PathBuf),
    /// The bytes of an image file, described but not stored.
    Bytes(Vec<u8>),
    /// A known image.
    Content(ContentId),
}

/// A similarity query whose limits are known to be valid: build it with
/// [`SimilarQuery::new`].
#[derive(Debug, Clone)]
pub struct SimilarQuery {
    image: ImageQuery,
    k: usize,
    alpha: Option<f64>,
    max_distance: Option<f64>,
}

/// A bad similarity query, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidQuery {
    pub field: &'static str,
    pub message: String,
}

impl SimilarQuery {
    /// At most `k` hits (1 to [`MAX_HITS`]), then only those with a p-value at most
    /// `alpha` (in `(0, 1]`) and a distance at most `max_distance` (finite, `>= 0`).
    pub fn new(
        image: ImageQuery,
        k: usize,
        alpha: Option<f64>,
        max_distance: Option<f64>,
    ) -> Result<SimilarQuery, InvalidQuery> {
        let invalid = |field, message: String| Err(InvalidQuery { field, message });
        if !(1..=MAX_HITS).contains(&k) {
            return invalid("k", format!("must be 1 to {MAX_HITS}, got {k}"));
        }
        if let Some(alpha) = alpha.filter(|alpha| !(*alpha > 0.0 && *alpha <= 1.0)) {
            return invalid("alpha", format!("must be in (0, 1], got {alpha}"));
        }
        if let Some(max) = max_distance.filter(|max| !(max.is_finite() && *max >= 0.0)) {
            return invalid("max_distance", format!("must be a finite number >= 0, got {max}"));
        }
        Ok(SimilarQuery { image, k, alpha, max_distance })
    }
}

/// The answer to a similarity query.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarImages {
    /// The query's content (the hash of its bytes).
    pub query: ContentId,
    /// Nearest first.
    pub hits: Vec<SimilarImage>,
}

/// One image found like the query.
#[derive(Debug, Clone, PartialEq)]
pub struct SimilarImage {
    pub content: ContentId,
    /// Every path holding this content, sorted.
    pub paths: Vec<PathBuf>,
    /// Euclidean distance in the model's space.
    pub distance: f64,
    /// The chance that two unrelated library images are at least this close; NaN when the
    /// model has no null distribution.
    pub p_value: f64,
    pub cluster: Option<usize>,
}

/// What is known about one path.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageInfo {
    pub path: PathBuf,
    pub record: FileRecord,
    /// The content's record, for an indexed path.
    pub content: Option<(ContentId, ContentRecord)>,
    pub cluster: Option<usize>,
    /// Placed in its cluster after the fit, by its nearest fitted image.
    pub provisional: bool,
    /// Every path holding the same content, sorted (this one included).
    pub paths: Vec<PathBuf>,
}

/// The clusters of the model in use, as they stand.
#[derive(Debug, Clone)]
pub struct ClusterList {
    /// Names the model: it changes with every refit, so paging can tell a stale token.
    pub model_tag: String,
    pub clusters: Vec<ClusterSummary>,
}

impl DaemonHandle {
    /// The images most like `query`, nearest first; the query's own content is never one.
    pub async fn find_similar(&self, query: SimilarQuery) -> Result<SimilarImages, DaemonError> {
        // Fail before decoding anything when there is no model to ask.
        self.library().view().ok_or(QueryError::NoModel)?;
        // An image named by path or id is not its own hit; uploaded bytes are a question
        // about the library, whose answer may well be the very same picture.
        let is_upload = matches!(query.image, ImageQuery::Bytes(_));
        let (content, vector) = self.query_vector(query.image).await?;
        let exclude = (!is_upload).then_some(content);
        let library = self.library();
        let view = library.view().ok_or(QueryError::NoModel)?;
        let found = match (vector, view.projection_of(&content)) {
            // A known image is searched with its point in the index.
            (None, Some(projected)) => {
                view.similar_projected(&projected, query.k, exclude, &library.catalog)?
            }
            (None, None) => {
                view.similar(&library.vector(&content)?, query.k, exclude, &library.catalog)?
            }
            (Some(vector), _) => view.similar(&vector, query.k, exclude, &library.catalog)?,
        };
        let hits = found
            .into_iter()
            .map(|hit| SimilarImage {
                p_value: p_value(&view, f64::from(hit.distance)),
                distance: f64::from(hit.distance),
                content: hit.content,
                paths: hit.paths,
                cluster: hit.cluster,
            })
            .filter(|hit| query.alpha.is_none_or(|alpha| hit.p_value <= alpha))
            .filter(|hit| query.max_distance.is_none_or(|max| hit.distance <= max))
            .collect();
        Ok(SimilarImages { query: content, hits })
    }

    /// What the store knows about `path` (under a root), with its cluster.
    pub fn image_info(&self, path: &Path) -> Result<ImageInfo, DaemonError> {
        let path = self.resolve(path)?;
        let library = self.library();
        let record = library
            .store
            .file(&path)
            .map_err(QueryError::from)?
            .ok_or_else(|| DaemonError::UnknownPath { path: path.clone() })?;
        let Some(content) = record.content() else {
            let paths = Vec::new();
            return Ok(ImageInfo {
                path,
                record,
                content: None,
                cluster: None,
                provisional: false,
                paths,
            });
        };
        let content_record = library.store.content(&content).map_err(QueryError::from)?;
        let view = library.view();
        let cluster = view.as_ref().and_then(|view| view.cluster_of(&content));
        let provisional = view.as_ref().is_some_and(|view| view.is_provisional(&content));
        let paths = library.catalog.read().expect("catalog lock").paths(&content);
        Ok(ImageInfo {
            path,
            record,
            content: content_record.map(|found| (content, found)),
            cluster,
            provisional,
            paths,
        })
    }

    /// The clusters of the model in use, with their members now.
    pub fn cluster_list(&self) -> Result<ClusterList, DaemonError> {
        let library = self.library();
        let view = library.view().ok_or(QueryError::NoModel)?;
        let model_tag =
            blake3::Hash::from_bytes(view.fitted.fingerprint).to_hex()[..12].to_string();
        Ok(ClusterList { model_tag, clusters: view.clusters(&library.catalog) })
    }

    /// Every path holding `content`, sorted; empty when none does.
    pub fn paths_of(&self, content: &ContentId) -> Vec<PathBuf> {
        self.library().catalog.read().expect("catalog lock").paths(content)
    }

    /// The query's content and its raw feature vector, from the store when the image is
    /// known, else by describing its bytes on a blocking thread (decoding is CPU work).
    /// The query's content, and its raw feature vector unless it is a known image (which
    /// the caller finds in the view, or reads from the store).
    async fn query_vector(
        &self,
        image: ImageQuery,
    ) -> Result<(ContentId, Option<Vec<f32>>), DaemonError> {
        let library = self.library();
        let bytes = match image {
            ImageQuery::Content(content) => {
                if !library.catalog.read().expect("catalog lock").is_live(&content) {
                    return Err(QueryError::UnknownContent(content).into());
                }
                return Ok((content, None));
            }
            ImageQuery::Path(path) => {
                let path = self.resolve(&path)?;
                let known = library.catalog.read().expect("catalog lock").content_of(&path);
                if let Some(content) = known {
                    return Ok((content, None));
                }
                let read = tokio::task::spawn_blocking({
                    let path = path.clone();
                    move || std::fs::read(&path)
                });
                let bytes = read.await.expect("reading does not panic");
                let bytes = bytes.map_err(|cause| DaemonError::BadQueryImage {
                    field: "path",
                    reason: format!("cannot read {}: {cause}", path.display()),
                })?;
                (bytes, "path", path)
            }
            ImageQuery::Bytes(bytes) => (bytes, "image", PathBuf::from("the uploaded image")),
        };
        let (bytes, field, name) = bytes;
        let extractor = Arc::clone(&self.shared.extractor);
        let described = tokio::task::spawn_blocking(move || {
            let content = ContentId::of(&bytes);
            extractor.describe(&bytes, &name).map(|described| (content, Some(described.vector)))
        });
        described
            .await
            .expect("describing does not panic")
            .map_err(|(_, reason)| DaemonError::BadQueryImage { field, reason })
    }
}

impl FileRecord {
    /// The failure's class and reason, for a failed path.
    pub fn failure(&self) -> Option<(crate::store::FailureKind, &str)> {
        match &self.state {
            FileState::Failed { kind, reason } => Some((*kind, reason.as_str())),
            _ => None,
        }
    }
}

fn p_value(view: &View, distance: f64) -> f64 {
    view.fitted.null.as_ref().map_or(f64::NAN, |null| null.p_value(distance))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_queries_name_the_bad_field() {
        let query = || ImageQuery::Content(ContentId([0; 32]));
        assert!(SimilarQuery::new(query(), 10, Some(0.05), Some(3.0)).is_ok());
        let field = |k, alpha, max| SimilarQuery::new(query(), k, alpha, max).unwrap_err().field;
        assert_eq!(field(0, None, None), "k");
        assert_eq!(field(MAX_HITS + 1, None, None), "k");
        assert_eq!(field(5, Some(0.0), None), "alpha");
        assert_eq!(field(5, Some(f64::NAN), None), "alpha");
        assert_eq!(field(5, None, Some(-1.0)), "max_distance");
        assert_eq!(field(5, None, Some(f64::INFINITY)), "max_distance");
    }
}

/// The duplicate groups of the library as they stand.
#[derive(Debug, Clone)]
pub struct DuplicateList {
    /// Names this state of the duplicates: it changes with every arrival, departure and
    /// verdict, so paging can tell a stale token.
    pub tag: String,
    pub groups: Vec<DuplicateGroup>,
}

/// One group of files that are copies of one picture.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateGroup {
    /// The weakest kind among the group's matches.
    pub kind: MatchKind,
    pub max_distance: u32,
    /// Every path, the suggested keeper first, then in path order.
    pub paths: Vec<PathBuf>,
    pub keeper: PathBuf,
    /// The matches that join the group's contents, each by one path of either side.
    pub pairs: Vec<DuplicatePair>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DuplicatePair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub kind: MatchKind,
    pub distance: u32,
}

/// What a `mark_not_duplicate` call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marked {
    /// Pairs of distinct contents recorded as not duplicates.
    pub pairs: u64,
    /// Of those, the pairs that were matched until now.
    pub links_removed: u64,
}

impl DaemonHandle {
    /// The groups of matches at least as strong as `weakest`, sorted by their first path.
    pub fn duplicate_list(&self, weakest: MatchKind) -> Result<DuplicateList, DaemonError> {
        let library = self.library();
        let (groups, generation) = {
            let duplicates = library.duplicates.read().expect("duplicates lock");
            let catalog = library.catalog.read().expect("catalog lock");
            let groups = duplicates.groups(weakest, |content| catalog.paths(content).len());
            let groups: Vec<(ContentGroup, Vec<Vec<PathBuf>>)> = groups
                .into_iter()
                .map(|group| {
                    let paths = group.contents.iter().map(|c| catalog.paths(c)).collect();
                    (group, paths)
                })
                .collect();
            (groups, duplicates.generation())
        };
        let mut listed = Vec::with_capacity(groups.len());
        for (group, paths_of_content) in groups {
            listed.push(self.describe_group(&group, &paths_of_content)?);
        }
        listed.sort_by(|a, b| a.paths.iter().min().cmp(&b.paths.iter().min()));
        Ok(DuplicateList { tag: format!("d{generation}"), groups: listed })
    }

    /// The keeper and the paths of a group, from the store's records of its files.
    fn describe_group(
        &self,
        group: &ContentGroup,
        paths_of_content: &[Vec<PathBuf>],
    ) -> Result<DuplicateGroup, DaemonError> {
        let library = self.library();
        let mut facts = Vec::new();
        for (content, paths) in group.contents.iter().zip(paths_of_content) {
            for path in paths {
                facts.push(library.file_facts(path, content).map_err(QueryError::from)?);
            }
        }
        let keeper_idx = choose_keeper(&facts).expect("a group has paths");
        let keeper = facts[keeper_idx].path.clone();
        let mut paths: Vec<PathBuf> = facts.into_iter().map(|file| file.path).collect();
        paths.sort();
        paths.retain(|path| *path != keeper);
        paths.insert(0, keeper.clone());
        let first_path = |content: &ContentId| {
            let idx = group.contents.iter().position(|c| c == content);
            idx.and_then(|idx| paths_of_content[idx].first().cloned()).unwrap_or_default()
        };
        let pairs = group
            .links
            .iter()
            .map(|(a, b, kind, distance)| DuplicatePair {
                a: first_path(a),
                b: first_path(b),
                kind: *kind,
                distance: *distance,
            })
            .collect();
        Ok(DuplicateGroup {
            kind: group.kind,
            max_distance: group.max_distance,
            paths,
            keeper,
            pairs,
        })
    }

    /// Records that the files at `paths` (under the roots, indexed) are not duplicates of
    /// each other: every pair of their distinct contents. The verdicts are stored before
    /// this returns, and hold across refits and restarts.
    pub fn mark_not_duplicate(&self, paths: &[PathBuf]) -> Result<Marked, DaemonError> {
        let library = self.library();
        let mut contents = Vec::new();
        for path in paths {
            let path = self.resolve(path)?;
            let content = library.catalog.read().expect("catalog lock").content_of(&path);
            let content = content.ok_or_else(|| DaemonError::UnknownPath { path: path.clone() })?;
            if !contents.contains(&content) {
                contents.push(content);
            }
        }
        if contents.len() < 2 {
            return Err(InvalidQuery {
                field: "paths",
                message: "give at least two files with different bytes (copies of the same \
                          bytes are always duplicates)"
                    .into(),
            }
            .into());
        }
        let marked_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs() as i64);
        let verdict = Verdict { marked_unix_s };
        let mut marked = Marked { pairs: 0, links_removed: 0 };
        let mut duplicates = library.duplicates.write().expect("duplicates lock");
        for (idx, a) in contents.iter().enumerate() {
            for b in &contents[idx + 1..] {
                library.store.put_verdict(a, b, &verdict).map_err(QueryError::from)?;
                let was_linked = duplicates.mark_not_duplicate(*a, *b);
                marked.pairs += 1;
                marked.links_removed += u64::from(was_linked);
            }
        }
        Ok(marked)
    }
}
