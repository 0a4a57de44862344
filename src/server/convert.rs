//! The daemon's values as API messages. One function per message; nothing here decides
//! anything.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::pb;
use crate::daemon::status::ModelStatus;
use crate::daemon::{DuplicateGroup, Event, ImageInfo, SimilarImage, SimilarImages, Status};
use crate::dedup::MatchKind;
use crate::store::{ContentId, FileState};

pub fn status(status: &Status) -> pb::Status {
    let counters = &status.counters;
    pb::Status {
        roots: status
            .roots
            .iter()
            .map(|root| pb::Root { path: text(&root.path), available: root.available })
            .collect(),
        files: status.files,
        images: status.images,
        pending: status.pending,
        failed: status.n_failed(),
        failed_by_kind: status.failed.iter().map(|(kind, n)| (kind.clone(), *n)).collect(),
        clusters: status.model.as_ref().map_or(0, |model| model.clusters),
        scanning: status.scanning,
        refitting: status.refitting,
        model: status.model.as_ref().map(model),
        changes_since_model: status.changes_since_model,
        counters: Some(pb::Counters {
            files_seen: counters.files_seen,
            decoded: counters.decoded,
            unchanged: counters.unchanged,
            known_content: counters.known_content,
            moved: counters.moved,
            removed: counters.removed,
            failed: counters.failed,
            refits: counters.refits,
            duplicates_found: counters.duplicates_found,
            duplicates_acted: counters.duplicates_acted,
        }),
        uptime_s: status.uptime_s,
    }
}

fn model(model: &ModelStatus) -> pb::Model {
    pb::Model {
        method: model.method.clone(),
        images: model.images,
        clusters: model.clusters,
        fitted_at_unix_s: model.fitted_at_unix_s,
        age_s: model.age_s,
        duration_s: model.duration_s,
        provisional: model.provisional,
    }
}

pub fn similar(found: SimilarImages) -> pb::FindSimilarResponse {
    pb::FindSimilarResponse {
        query_image_id: found.query.to_hex(),
        hits: found.hits.into_iter().map(hit).collect(),
    }
}

fn hit(hit: SimilarImage) -> pb::Hit {
    pb::Hit {
        image_id: hit.content.to_hex(),
        path: hit.paths.first().map(|path| text(path)).unwrap_or_default(),
        paths: texts(&hit.paths),
        distance: hit.distance,
        p_value: hit.p_value,
        cluster: cluster_id(hit.cluster),
    }
}

pub fn image_ref(content: &ContentId, paths: &[PathBuf]) -> pb::ImageRef {
    pb::ImageRef {
        image_id: content.to_hex(),
        path: paths.first().map(|path| text(path)).unwrap_or_default(),
        paths: texts(paths),
    }
}

pub fn image(info: ImageInfo) -> pb::Image {
    let (state, failure_kind, failure_reason) = match &info.record.state {
        FileState::Pending => (pb::FileState::Pending, String::new(), String::new()),
        FileState::Indexed { .. } => (pb::FileState::Indexed, String::new(), String::new()),
        FileState::Failed { kind, reason } => {
            (pb::FileState::Failed, kind.name().to_string(), reason.clone())
        }
    };
    let mut message = pb::Image {
        path: text(&info.path),
        state: state.into(),
        failure_kind,
        failure_reason,
        file_size_bytes: info.record.size_bytes,
        modified_unix_ns: i64::try_from(info.record.modified_ns).unwrap_or(i64::MAX),
        cluster: cluster_id(info.cluster),
        provisional: info.provisional,
        paths: texts(&info.paths),
        ..pb::Image::default()
    };
    if let Some((content, record)) = info.content {
        message.image_id = content.to_hex();
        message.width_px = record.width_px;
        message.height_px = record.height_px;
        message.format = record.format.unwrap_or_default();
        message.hashes = record
            .hashes
            .iter()
            .map(|(kind, bits)| pb::PerceptualHash {
                kind: kind.name().to_string(),
                hex: format!("{bits:016x}"),
            })
            .collect();
        message.exif = record.exif.map(|exif| pb::Exif {
            orientation: exif.orientation.map_or(0, u32::from),
            taken_at_unix_s: exif.taken_at_unix_s,
            latitude_deg: exif.gps.map(|gps| gps.latitude_deg),
            longitude_deg: exif.gps.map(|gps| gps.longitude_deg),
            camera_make: exif.camera_make.unwrap_or_default(),
            camera_model: exif.camera_model.unwrap_or_default(),
        });
    }
    message
}

pub fn event(event: Event) -> pb::Event {
    use pb::event::Kind;
    let kind = match event {
        Event::Added { path, content, decoded } => {
            Kind::Added(pb::ImageAdded { path: text(&path), image_id: content.to_hex(), decoded })
        }
        Event::Changed { path, content, decoded } => Kind::Changed(pb::ImageChanged {
            path: text(&path),
            image_id: content.to_hex(),
            decoded,
        }),
        Event::Removed { path } => Kind::Removed(pb::ImageRemoved { path: text(&path) }),
        Event::Moved { from, to } => {
            Kind::Moved(pb::ImageMoved { from: text(&from), to: text(&to) })
        }
        Event::Failed { path, failure, reason } => Kind::Failed(pb::ImageFailed {
            path: text(&path),
            kind: failure.name().to_string(),
            reason,
        }),
        Event::RootUnavailable { path } => {
            Kind::RootUnavailable(pb::RootUnavailable { path: text(&path) })
        }
        Event::RootRestored { path } => Kind::RootRestored(pb::RootRestored { path: text(&path) }),
        Event::ScanFinished { files, queued, forgotten } => {
            Kind::ScanFinished(pb::ScanFinished { files, queued, forgotten })
        }
        Event::RefitStarted { images } => Kind::RefitStarted(pb::RefitStarted { images }),
        Event::RefitFinished { images, clusters, duration_s } => {
            Kind::RefitFinished(pb::RefitFinished { images, clusters, duration_s })
        }
        Event::RefitFailed { reason } => Kind::RefitFailed(pb::RefitFailed { reason }),
        Event::Duplicate { path, matches } => Kind::Duplicate(pb::DuplicateFound {
            path: text(&path),
            matches: matches
                .into_iter()
                .map(|found| pb::DuplicateMatch {
                    image_id: found.content.to_hex(),
                    paths: texts(&found.paths),
                    kind: pb::DuplicateKind::from(found.kind).into(),
                    distance: found.distance,
                })
                .collect(),
        }),
    };
    stamped(kind)
}

impl From<MatchKind> for pb::DuplicateKind {
    fn from(kind: MatchKind) -> pb::DuplicateKind {
        match kind {
            MatchKind::Exact => pb::DuplicateKind::Exact,
            MatchKind::Duplicate => pb::DuplicateKind::Duplicate,
            MatchKind::Similar => pb::DuplicateKind::Similar,
        }
    }
}

impl pb::DuplicateKind {
    /// The kind this names; `None` for `UNSPECIFIED`.
    pub fn match_kind(self) -> Option<MatchKind> {
        match self {
            pb::DuplicateKind::Unspecified => None,
            pb::DuplicateKind::Exact => Some(MatchKind::Exact),
            pb::DuplicateKind::Duplicate => Some(MatchKind::Duplicate),
            pb::DuplicateKind::Similar => Some(MatchKind::Similar),
        }
    }
}

pub fn duplicate_group(group: &DuplicateGroup) -> pb::DuplicateGroup {
    pb::DuplicateGroup {
        kind: pb::DuplicateKind::from(group.kind).into(),
        max_distance: group.max_distance,
        paths: texts(&group.paths),
        keeper: text(&group.keeper),
        pairs: group
            .pairs
            .iter()
            .map(|pair| pb::DuplicatePair {
                a: text(&pair.a),
                b: text(&pair.b),
                kind: pb::DuplicateKind::from(pair.kind).into(),
                distance: pair.distance,
            })
            .collect(),
    }
}

/// The notice sent in place of `count` events a slow stream missed.
pub fn missed(count: u64) -> pb::Event {
    stamped(pb::event::Kind::Missed(pb::EventsMissed { count }))
}

fn stamped(kind: pb::event::Kind) -> pb::Event {
    let at_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |elapsed| elapsed.as_secs_f64());
    pb::Event { at_unix_s, kind: Some(kind) }
}

/// A cluster id on the wire: `-1` for none.
pub fn cluster_id(cluster: Option<usize>) -> i32 {
    cluster.map_or(-1, |id| i32::try_from(id).unwrap_or(i32::MAX))
}

/// A path as text; paths that are not valid UTF-8 are shown with replacement characters.
fn text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

fn texts(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|path| text(path)).collect()
}
