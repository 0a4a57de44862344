//! The library in memory: which paths hold which content, the model in use, its index,
//! and the queries answered from them.
//!
//! The [`Catalog`] mirrors the store's file records (it is rebuilt from them at start) so
//! that status and queries need no scan. The [`View`] is the fitted model with its index;
//! a refit builds a new one beside it and [`Library::swap_view`] replaces it in one step,
//! so a query sees either the old view or the new one, never half of each. Between refits
//! new images are added to the view provisionally, and images that are gone are filtered
//! out of every answer.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::duplicates::Duplicates;
use super::status::{Counters, Event};
use crate::dedup::FileFacts;
use crate::index::{HnswIndex, IndexError, PointId, VectorIndex};
use crate::model::distribution::FittedDistribution;
use crate::model::{Model, ModelError};
use crate::store::{ContentId, FailureKind, Store, StoreError};

/// Which paths hold which content, and which paths failed.
#[derive(Debug, Default)]
pub struct Catalog {
    paths_of: HashMap<ContentId, BTreeSet<PathBuf>>,
    content_of: HashMap<PathBuf, ContentId>,
    failed: HashMap<PathBuf, FailureKind>,
}

/// How a change to one path changed the set of distinct contents.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ContentChange {
    /// The path's new content had no other path: it is new to the library.
    pub added: Option<ContentId>,
    /// The path's old content has no path left: it left the library.
    pub removed: Option<ContentId>,
}

impl Catalog {
    /// Builds the catalog from the store's file records.
    pub fn load(store: &Store) -> Result<Catalog, StoreError> {
        let mut catalog = Catalog::default();
        for entry in store.files() {
            let (path, record) = entry?;
            match record.state {
                crate::store::FileState::Indexed { content } => {
                    catalog.index(path, content);
                }
                crate::store::FileState::Failed { kind, .. } => {
                    catalog.fail(path, kind);
                }
                crate::store::FileState::Pending => {}
            }
        }
        Ok(catalog)
    }

    /// Records that `path` now holds `content`.
    pub fn index(&mut self, path: PathBuf, content: ContentId) -> ContentChange {
        let orphaned = self.detach(&path);
        self.failed.remove(&path);
        let paths = self.paths_of.entry(content).or_default();
        // Indexing the only path of a content again with the same content changes nothing.
        let added = (paths.is_empty() && orphaned != Some(content)).then_some(content);
        paths.insert(path.clone());
        self.content_of.insert(path, content);
        ContentChange { added, removed: orphaned.filter(|old| *old != content) }
    }

    /// Records that `path` failed.
    pub fn fail(&mut self, path: PathBuf, kind: FailureKind) -> ContentChange {
        let removed = self.detach(&path);
        self.failed.insert(path, kind);
        ContentChange { added: None, removed }
    }

    /// Forgets `path`.
    pub fn forget(&mut self, path: &Path) -> ContentChange {
        self.failed.remove(path);
        ContentChange { added: None, removed: self.detach(path) }
    }

    /// Moves what is known about `from` to `to`; no content changes.
    pub fn rename(&mut self, from: &Path, to: PathBuf) {
        if let Some(content) = self.content_of.remove(from) {
            if let Some(paths) = self.paths_of.get_mut(&content) {
                paths.remove(from);
                paths.insert(to.clone());
            }
            self.content_of.insert(to, content);
        } else if let Some(kind) = self.failed.remove(from) {
            self.failed.insert(to, kind);
        }
    }

    /// Removes `path` from its content; returns the content if no path holds it any more.
    fn detach(&mut self, path: &Path) -> Option<ContentId> {
        let content = self.content_of.remove(path)?;
        let paths = self.paths_of.get_mut(&content)?;
        paths.remove(path);
        if paths.is_empty() {
            self.paths_of.remove(&content);
            return Some(content);
        }
        None
    }

    pub fn is_live(&self, content: &ContentId) -> bool {
        self.paths_of.contains_key(content)
    }

    pub fn paths(&self, content: &ContentId) -> Vec<PathBuf> {
        self.paths_of.get(content).map(|paths| paths.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn content_of(&self, path: &Path) -> Option<ContentId> {
        self.content_of.get(path).copied()
    }

    /// Distinct contents with at least one path, sorted.
    pub fn contents(&self) -> Vec<ContentId> {
        let mut contents: Vec<ContentId> = self.paths_of.keys().copied().collect();
        contents.sort_unstable();
        contents
    }

    pub fn n_images(&self) -> usize {
        self.paths_of.len()
    }

    pub fn n_indexed_paths(&self) -> usize {
        self.content_of.len()
    }

    /// Failed paths by class of failure.
    pub fn failures(&self) -> HashMap<FailureKind, u64> {
        let mut counts = HashMap::new();
        for kind in self.failed.values() {
            *counts.entry(*kind).or_insert(0) += 1;
        }
        counts
    }
}

/// A fitted model with the contents of its rows; what is saved as `model.bin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fitted {
    /// Row `i` of the model is content `contents[i]`.
    pub contents: Vec<ContentId>,
    pub model: Model,
    /// Identifies the inputs (contents and parameters) the model was fitted on.
    pub fingerprint: [u8; 32],
    /// The distribution of distances between unrelated images, fitted on a sample of
    /// pairs of the model's rows: it turns a distance into a p-value. `None` when it could
    /// not be fitted (too few distinct distances).
    pub null: Option<FittedDistribution>,
    pub fitted_at_unix_s: u64,
    pub duration_s: f64,
}

impl Fitted {
    /// The fingerprint of a fit over `contents` (sorted) with the given parameters.
    pub fn fingerprint(contents: &[ContentId], parameters: &impl Serialize) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&crate::store::encode_value(parameters));
        for content in contents {
            hasher.update(content.as_bytes());
        }
        *hasher.finalize().as_bytes()
    }

    /// The index's points: the model's rows in its own space, as `f32`.
    pub fn points(&self) -> Vec<Vec<f32>> {
        self.model
            .features
            .rows()
            .into_iter()
            .map(|row| row.iter().map(|&value| value as f32).collect())
            .collect()
    }
}

/// Which content each index point is, and the cluster of points added since the fit.
#[derive(Debug, Default)]
struct Points {
    contents: Vec<ContentId>,
    id_of: HashMap<ContentId, PointId>,
    provisional: HashMap<PointId, Option<usize>>,
    /// The projected vectors of the points added since the fit (the fitted ones are the
    /// model's rows).
    provisional_vectors: HashMap<PointId, Vec<f32>>,
}

/// The model in use and its index.
pub struct View {
    pub fitted: Arc<Fitted>,
    index: HnswIndex,
    points: RwLock<Points>,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("images", &self.fitted.contents.len()).finish()
    }
}

/// One answer to a similarity query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Similar {
    pub content: ContentId,
    /// Every path holding this content, sorted.
    pub paths: Vec<PathBuf>,
    /// Euclidean distance in the model's space.
    pub distance: f32,
    pub cluster: Option<usize>,
}

/// One cluster of the model in use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterSummary {
    pub id: usize,
    /// Distinct images in the cluster now, provisional ones included.
    pub members: Vec<ContentId>,
    /// The member nearest the cluster's centre at the fit; `None` if it is gone since.
    pub representative: Option<ContentId>,
}

/// Why a query could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error(
        "no model yet: the library has fewer images than a fit needs, or the first fit is running"
    )]
    NoModel,
    #[error("unknown image {0}")]
    UnknownContent(ContentId),
    #[error("{0}")]
    Model(#[from] ModelError),
    #[error("{0}")]
    Index(#[from] IndexError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl View {
    /// A view over `fitted` and its freshly built or loaded `index`.
    pub fn new(fitted: Arc<Fitted>, index: HnswIndex) -> View {
        let contents = fitted.contents.clone();
        let id_of = contents.iter().enumerate().map(|(id, content)| (*content, id)).collect();
        View { fitted, index, points: RwLock::new(Points { contents, id_of, ..Points::default() }) }
    }

    pub fn contains(&self, content: &ContentId) -> bool {
        self.points.read().expect("points lock").id_of.contains_key(content)
    }

    pub fn n_provisional(&self) -> usize {
        self.points.read().expect("points lock").provisional.len()
    }

    /// Adds a content that arrived after the fit, given its raw feature vector, and places
    /// it in the cluster of its nearest fitted image.
    pub fn add(
        &self,
        content: ContentId,
        vector: &[f32],
        catalog: &RwLock<Catalog>,
    ) -> Result<(), QueryError> {
        if self.contains(&content) {
            return Ok(());
        }
        let projected: Vec<f32> =
            self.fitted.model.project(vector)?.iter().map(|&value| value as f32).collect();
        let n_fitted = self.fitted.contents.len();
        let cluster = {
            let catalog = catalog.read().expect("catalog lock");
            let keep = |id: PointId| id < n_fitted && catalog.is_live(&self.fitted.contents[id]);
            let nearest = self.index.search(&projected, 1, &keep)?;
            nearest.first().and_then(|hit| self.fitted.model.clustering.labels[hit.id])
        };
        let mut points = self.points.write().expect("points lock");
        if points.id_of.contains_key(&content) {
            return Ok(());
        }
        let id = points.contents.len();
        self.index.insert(id, &projected)?;
        points.contents.push(content);
        points.id_of.insert(content, id);
        points.provisional.insert(id, cluster);
        points.provisional_vectors.insert(id, projected);
        Ok(())
    }

    /// The point of a content the view holds, in the model's space: what a query by a
    /// known image searches with, without reading and projecting its raw features again.
    pub fn projection_of(&self, content: &ContentId) -> Option<Vec<f32>> {
        let points = self.points.read().expect("points lock");
        let id = *points.id_of.get(content)?;
        match points.provisional_vectors.get(&id) {
            Some(vector) => Some(vector.clone()),
            None => {
                let row = self.fitted.model.features.row(id);
                Some(row.iter().map(|&value| value as f32).collect())
            }
        }
    }

    /// True when `content` came after the fit and was placed by its nearest neighbour.
    pub fn is_provisional(&self, content: &ContentId) -> bool {
        let points = self.points.read().expect("points lock");
        points.id_of.get(content).is_some_and(|id| points.provisional.contains_key(id))
    }

    /// The cluster of `content`, fitted or provisional.
    pub fn cluster_of(&self, content: &ContentId) -> Option<usize> {
        let points = self.points.read().expect("points lock");
        let id = *points.id_of.get(content)?;
        self.cluster_of_point(&points, id)
    }

    fn cluster_of_point(&self, points: &Points, id: PointId) -> Option<usize> {
        match self.fitted.model.clustering.labels.get(id) {
            Some(label) => *label,
            None => points.provisional.get(&id).copied().flatten(),
        }
    }

    /// The `k` live images nearest the raw feature vector `vector`, nearest first;
    /// `exclude` is left out of the answer.
    pub fn similar(
        &self,
        vector: &[f32],
        k: usize,
        exclude: Option<ContentId>,
        catalog: &RwLock<Catalog>,
    ) -> Result<Vec<Similar>, QueryError> {
        let projected: Vec<f32> =
            self.fitted.model.project(vector)?.iter().map(|&value| value as f32).collect();
        self.similar_projected(&projected, k, exclude, catalog)
    }

    /// As [`View::similar`], for a vector already in the model's space.
    pub fn similar_projected(
        &self,
        projected: &[f32],
        k: usize,
        exclude: Option<ContentId>,
        catalog: &RwLock<Catalog>,
    ) -> Result<Vec<Similar>, QueryError> {
        let catalog = catalog.read().expect("catalog lock");
        let points = self.points.read().expect("points lock");
        let keep = |id: PointId| {
            points
                .contents
                .get(id)
                .is_some_and(|content| Some(*content) != exclude && catalog.is_live(content))
        };
        let hits = self.index.search(projected, k, &keep)?;
        Ok(hits
            .into_iter()
            .map(|hit| {
                let content = points.contents[hit.id];
                Similar {
                    content,
                    paths: catalog.paths(&content),
                    distance: hit.distance,
                    cluster: self.cluster_of_point(&points, hit.id),
                }
            })
            .collect())
    }

    /// The clusters as they stand: fitted members still present, plus provisional ones.
    pub fn clusters(&self, catalog: &RwLock<Catalog>) -> Vec<ClusterSummary> {
        let model = &self.fitted.model;
        let mut summaries: Vec<ClusterSummary> = (0..model.clustering.n_clusters)
            .map(|id| ClusterSummary { id, members: Vec::new(), representative: None })
            .collect();
        let catalog = catalog.read().expect("catalog lock");
        let points = self.points.read().expect("points lock");
        for (id, content) in points.contents.iter().enumerate() {
            if !catalog.is_live(content) {
                continue;
            }
            if let Some(cluster) = self.cluster_of_point(&points, id) {
                summaries[cluster].members.push(*content);
            }
        }
        for representative in &model.representatives {
            let content = self.fitted.contents[representative.image_idx];
            if catalog.is_live(&content) {
                summaries[representative.cluster].representative = Some(content);
            }
        }
        summaries
    }
}

/// The library: the store, the catalog, the view in use, counters and events.
pub struct Library {
    pub store: Store,
    pub catalog: RwLock<Catalog>,
    view: RwLock<Option<Arc<View>>>,
    pub counters: Counters,
    events: tokio::sync::broadcast::Sender<Event>,
    /// The store key of the configured features.
    pub feature_key: crate::store::FeatureKey,
    /// Which contents match which: written by the coordinator as files come and go, and by
    /// `DaemonHandle::mark_not_duplicate`.
    pub duplicates: RwLock<Duplicates>,
}

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library").field("store", &self.store).finish()
    }
}

/// Events kept for slow subscribers before they start missing some.
const EVENT_BUFFER: usize = 4096;

impl Library {
    pub fn new(
        store: Store,
        catalog: Catalog,
        feature_key: crate::store::FeatureKey,
        duplicates: Duplicates,
    ) -> Library {
        Library {
            duplicates: RwLock::new(duplicates),
            store,
            catalog: RwLock::new(catalog),
            view: RwLock::new(None),
            counters: Counters::default(),
            events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
            feature_key,
        }
    }

    /// What the keeper policy compares of the file at `path`, holding `content`, from the
    /// store's records (nothing is read from the file).
    pub fn file_facts(&self, path: &Path, content: &ContentId) -> Result<FileFacts, StoreError> {
        let record = self.store.content(content)?;
        let file = self.store.file(path)?;
        Ok(FileFacts {
            path: path.to_path_buf(),
            width_px: record.as_ref().map_or(0, |r| r.width_px),
            height_px: record.as_ref().map_or(0, |r| r.height_px),
            size_bytes: record.as_ref().map_or(0, |r| r.size_bytes),
            format: record.as_ref().and_then(|r| r.format.clone()),
            n_exif_fields: record
                .as_ref()
                .and_then(|r| r.exif.as_ref())
                .map_or(0, |exif| exif.field_count()),
            modified_unix_s: file.map(|file| file.modified_ns.div_euclid(1_000_000_000) as i64),
        })
    }

    /// The view in use, if a model has been fitted.
    pub fn view(&self) -> Option<Arc<View>> {
        self.view.read().expect("view lock").clone()
    }

    /// Puts `view` in use; queries already running finish on the old one.
    pub fn swap_view(&self, view: Arc<View>) {
        *self.view.write().expect("view lock") = Some(view);
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub fn publish(&self, event: Event) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    /// The stored raw feature vector of `content`.
    pub fn vector(&self, content: &ContentId) -> Result<Vec<f32>, QueryError> {
        self.store.features(content, &self.feature_key)?.ok_or(QueryError::UnknownContent(*content))
    }

    /// The `k` images most like the known image `content`, itself excluded.
    pub fn similar_to(&self, content: &ContentId, k: usize) -> Result<Vec<Similar>, QueryError> {
        if !self.catalog.read().expect("catalog lock").is_live(content) {
            return Err(QueryError::UnknownContent(*content));
        }
        let view = self.view().ok_or(QueryError::NoModel)?;
        match view.projection_of(content) {
            Some(projected) => view.similar_projected(&projected, k, Some(*content), &self.catalog),
            None => view.similar(&self.vector(content)?, k, Some(*content), &self.catalog),
        }
    }

    /// The `k` images most like a raw feature vector.
    pub fn similar_to_vector(&self, vector: &[f32], k: usize) -> Result<Vec<Similar>, QueryError> {
        let view = self.view().ok_or(QueryError::NoModel)?;
        view.similar(vector, k, None, &self.catalog)
    }

    pub fn clusters(&self) -> Result<Vec<ClusterSummary>, QueryError> {
        let view = self.view().ok_or(QueryError::NoModel)?;
        Ok(view.clusters(&self.catalog))
    }

    pub fn cluster_of(&self, content: &ContentId) -> Option<usize> {
        self.view()?.cluster_of(content)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_come_and_go_with_their_last_path() {
        let mut catalog = Catalog::default();
        let (a, b) = (ContentId([1; 32]), ContentId([2; 32]));
        let change = catalog.index("/r/1.jpg".into(), a);
        assert_eq!(change, ContentChange { added: Some(a), removed: None });
        assert_eq!(catalog.index("/r/copy.jpg".into(), a), ContentChange::default());
        assert_eq!(catalog.forget(Path::new("/r/1.jpg")), ContentChange::default());
        catalog.rename(Path::new("/r/copy.jpg"), "/r/moved.jpg".into());
        assert_eq!(catalog.paths(&a), vec![PathBuf::from("/r/moved.jpg")]);
        let change = catalog.index("/r/moved.jpg".into(), b);
        assert_eq!(change, ContentChange { added: Some(b), removed: Some(a) });
        assert_eq!(catalog.index("/r/moved.jpg".into(), b), ContentChange::default());
        let change = catalog.fail("/r/moved.jpg".into(), FailureKind::Corrupt);
        assert_eq!(change, ContentChange { added: None, removed: Some(b) });
        assert_eq!(catalog.n_images(), 0);
        assert_eq!(catalog.failures().get(&FailureKind::Corrupt), Some(&1));
    }
}
