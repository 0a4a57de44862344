//! From a fitted model to the figures: what each one shows, capped and sampled, with its
//! title and the note that says what was left out.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use plotters::style::RGBColor;
use rayon::prelude::*;

use super::draw::{legend_entries, MAX_LEGEND_ENTRIES};
use super::figure;
use super::figures::dendrogram::{self, Dendrogram};
use super::figures::exif::{ExifFigure, ExifPlot, MAX_PHOTOS};
use super::figures::find::NullDistribution;
use super::figures::montage::{Montage, Picture, Tile};
use super::figures::scatter::{self, Pinned, Point, Scatter, MAX_POINTS, MAX_POINT_THUMBNAILS};
use super::figures::scores::{Plotted, Scores};
use super::figures::variance::{Variance, MAX_COMPONENTS};
use super::layout::{self, Capped};
use super::thumbnails::{ThumbnailSource, Thumbnails};
use super::{FindQuery, ReportError, ReportInput, ReportOptions, WrittenReport};
use crate::model::distribution::FittedDistribution;
use crate::model::find::FindParams;
use crate::model::{ClusterMethod, ComponentCount, EmbeddingKind, Evaluation, ExifInput};

/// Most clusters that get a page; the index lists the others without one.
pub const MAX_CLUSTER_PAGES: usize = 50;
/// Most tiles on a cluster's page, the last one "+N more" when the cluster is larger.
pub const MAX_TILES: usize = 42;
/// Most clusters on the unique-images figure.
pub const MAX_UNIQUE: usize = 60;
/// Most hits drawn for one query of `find`.
pub const MAX_HITS: usize = 23;

/// Colour of the frame around a representative or a query.
const HIGHLIGHT: RGBColor = RGBColor(214, 39, 40);

/// The decisions shared by the figures of a cluster report: cluster sizes and members,
/// and the samples drawn.
#[derive(Debug, Clone)]
pub struct Plan {
    pub sizes: Vec<usize>,
    pub n_noise: usize,
    /// Image indices of each cluster's members, in increasing order.
    pub members: Vec<Vec<usize>>,
    /// Image index of each cluster's representative.
    pub representatives: Vec<usize>,
    /// The images drawn as points.
    pub scatter_sample: Vec<usize>,
    /// The images drawn as thumbnails on the embedding, when asked for.
    pub point_thumbnails: Vec<usize>,
    pub seed: u64,
}

impl Plan {
    pub fn new(input: &ReportInput<'_>, options: &ReportOptions) -> Plan {
        let clustering = &input.model.clustering;
        let n_images = clustering.labels.len();
        let mut members = vec![Vec::new(); clustering.n_clusters];
        for (image_idx, label) in clustering.labels.iter().enumerate() {
            if let Some(cluster) = label {
                members[*cluster].push(image_idx);
            }
        }
        let seed = input.params.cluster.seed;
        let point_thumbnails = match options.all_thumbnails {
            true => layout::sample(n_images, MAX_POINT_THUMBNAILS, seed),
            false => Vec::new(),
        };
        Plan {
            sizes: members.iter().map(Vec::len).collect(),
            n_noise: clustering.labels.iter().filter(|l| l.is_none()).count(),
            representatives: input.model.representatives.iter().map(|r| r.image_idx).collect(),
            members,
            scatter_sample: layout::sample(n_images, MAX_POINTS, seed),
            point_thumbnails,
            seed,
        }
    }

    pub fn n_clusters(&self) -> usize {
        self.sizes.len()
    }

    /// Clusters with a page: the largest (cluster 0 is the largest).
    pub fn n_pages(&self) -> usize {
        self.n_clusters().min(MAX_CLUSTER_PAGES)
    }

    /// Thumbnails the figures other than the cluster pages draw.
    pub fn shared_thumbnails(&self) -> BTreeSet<usize> {
        let n_shown = MAX_UNIQUE.max(MAX_LEGEND_ENTRIES);
        let mut needed: BTreeSet<usize> =
            self.representatives.iter().take(n_shown).copied().collect();
        needed.extend(&self.point_thumbnails);
        needed
    }

    /// The images on `cluster`'s page.
    pub fn page_tiles(&self, cluster: usize) -> Capped<usize> {
        let seed = self.seed.wrapping_add(cluster as u64);
        member_tiles(&self.members[cluster], self.representatives[cluster], MAX_TILES, seed)
    }

    pub fn page_thumbnails(&self, cluster: usize) -> BTreeSet<usize> {
        self.page_tiles(cluster).shown.into_iter().collect()
    }
}

/// The tiles of a cluster's page: the representative first, then the other members in
/// order; when they do not all fit, a seeded sample of them and a "+N more" tile.
pub fn member_tiles(
    members: &[usize],
    representative: usize,
    max_tiles: usize,
    seed: u64,
) -> Capped<usize> {
    let others: Vec<usize> = members.iter().copied().filter(|&m| m != representative).collect();
    let mut shown = vec![representative];
    if members.len() <= max_tiles {
        shown.extend(others);
        return Capped { shown, n_more: 0 };
    }
    let n_sampled = max_tiles.saturating_sub(2).max(1);
    shown.extend(layout::sample(others.len(), n_sampled, seed).into_iter().map(|i| others[i]));
    Capped { n_more: members.len() - shown.len(), shown }
}

/// A 2-D view of the images.
struct Plane {
    /// File-name part: `tsne`, `pca`.
    stem: &'static str,
    title: String,
    axes: (String, String),
    /// Shape `(n_images, 2)`.
    coordinates: Array2<f64>,
}

fn planes(input: &ReportInput<'_>) -> Vec<Plane> {
    let model = input.model;
    if model.method.uses_exif() {
        return Vec::new();
    }
    let mut planes = Vec::new();
    let embedding_kind = match (input.params.embedding, input.params.cluster_space) {
        (EmbeddingKind::None, crate::model::ClusterSpace::Low) => EmbeddingKind::Tsne,
        (kind, _) => kind,
    };
    if let (Some(embedding), EmbeddingKind::Tsne) = (&model.embedding, embedding_kind) {
        planes.push(Plane {
            stem: "tsne",
            title: "t-SNE embedding".to_string(),
            axes: ("t-SNE 1".to_string(), "t-SNE 2".to_string()),
            coordinates: embedding.clone(),
        });
    }
    let pca_plane = match (&model.embedding, embedding_kind) {
        (Some(embedding), EmbeddingKind::Pca) => Some(embedding.clone()),
        _ => crate::model::pca_plane(model.features.view(), model.pca.as_ref(), input.params)
            .map_err(|error| tracing::warn!(cause = %error, "no PCA plane for the report"))
            .ok(),
    };
    if let Some(coordinates) = pca_plane {
        let ratios = model.pca.as_ref().map(|p| p.explained_variance_ratio.clone());
        let axis = |idx: usize| match ratios.as_ref().and_then(|r| r.get(idx)) {
            Some(ratio) => format!("principal component {} ({:.1} %)", idx + 1, ratio * 100.0),
            None => format!("principal component {}", idx + 1),
        };
        planes.push(Plane {
            stem: "pca",
            title: "The first two principal components".to_string(),
            axes: (axis(0), axis(1)),
            coordinates,
        });
    }
    planes
}

/// The embedding figures: one per plane, and one with thumbnails at the points when the
/// plan has them.
pub fn scatters(input: &ReportInput<'_>, plan: &Plan, thumbnails: &Thumbnails) -> Vec<Scatter> {
    let labels = &input.model.clustering.labels;
    let legend = legend_entries(&plan.sizes, plan.n_noise);
    let n_images = labels.len();
    let mut figures = Vec::new();
    for plane in planes(input) {
        let point = |idx: usize| Point {
            x: plane.coordinates[[idx, 0]],
            y: plane.coordinates[[idx, 1]],
            label: labels[idx],
        };
        let all: Vec<Point> = (0..n_images).map(point).collect();
        let centres: Vec<Pinned> = scatter::centres(&all, plan.n_clusters())
            .into_iter()
            .enumerate()
            .take(MAX_LEGEND_ENTRIES)
            .filter_map(|(cluster, centre)| {
                let (x, y) = centre?;
                let thumbnail = thumbnails.get(plan.representatives[cluster]).cloned();
                Some(Pinned { x, y, label: Some(cluster), thumbnail })
            })
            .collect();
        let mut subtitle = format!(
            "{n_images} images in {} clusters, coloured by cluster; each cluster's \
             representative at its centre",
            plan.n_clusters()
        );
        if plan.scatter_sample.len() < n_images {
            subtitle += &format!("; {} of {n_images} points drawn", plan.scatter_sample.len());
        }
        if plan.n_clusters() > MAX_LEGEND_ENTRIES {
            subtitle += &format!("; thumbnails for the {MAX_LEGEND_ENTRIES} largest");
        }
        let scatter = Scatter {
            name: format!("scatter-{}", plane.stem),
            title: plane.title.clone(),
            subtitle: subtitle.clone(),
            axes: plane.axes.clone(),
            points: plan.scatter_sample.iter().map(|&idx| all[idx]).collect(),
            centres,
            at_points: Vec::new(),
            legend: legend.clone(),
        };
        let mut with_thumbnails = None;
        if !plan.point_thumbnails.is_empty() {
            let at_points = plan
                .point_thumbnails
                .iter()
                .map(|&idx| {
                    let Point { x, y, label } = all[idx];
                    Pinned { x, y, label, thumbnail: thumbnails.get(idx).cloned() }
                })
                .collect();
            let shown = plan.point_thumbnails.len();
            with_thumbnails = Some(Scatter {
                name: format!("scatter-{}-thumbnails", plane.stem),
                title: format!("{}, with thumbnails", plane.title),
                subtitle: format!("{shown} of {n_images} images drawn as thumbnails"),
                centres: Vec::new(),
                at_points,
                ..scatter.clone()
            });
        }
        figures.push(scatter);
        figures.extend(with_thumbnails);
    }
    figures
}

pub fn dendrogram(input: &ReportInput<'_>) -> Option<Dendrogram> {
    let clustering = &input.model.clustering;
    if clustering.dendrogram.is_empty() {
        return None;
    }
    let leaf_labels: Vec<Option<usize>> =
        clustering.fit_indices.iter().map(|&idx| clustering.labels[idx]).collect();
    let n_leaves = leaf_labels.len();
    let tree = dendrogram::layout(&clustering.dendrogram, &leaf_labels, dendrogram::MAX_LEAVES);
    let k = clustering.n_clusters;
    let cut = dendrogram::cut_height(&clustering.dendrogram, n_leaves, k).map(|h| (h, k));
    let linkage = format!("{:?}", input.params.cluster.linkage).to_lowercase();
    let mut subtitle = format!("{n_leaves} images");
    if n_leaves < clustering.labels.len() {
        subtitle += &format!(" (a sample of {})", clustering.labels.len());
    }
    if tree.leaves.len() < n_leaves {
        subtitle += &format!("; the last {} merges drawn", tree.links.len());
    }
    subtitle += &format!("; branches under the cut coloured by their cluster (k = {k})");
    Some(Dendrogram { title: format!("Dendrogram ({linkage} linkage)"), subtitle, tree, cut })
}

pub fn scores(input: &ReportInput<'_>) -> Option<Scores> {
    let clustering = &input.model.clustering;
    let Plotted { candidates, chosen, by_radius } =
        Scores::candidates(&clustering.scores, clustering.chosen)?;
    let cluster = &input.params.cluster;
    let evaluation = match cluster.method {
        ClusterMethod::Dbscan => Evaluation::Silhouette,
        _ => cluster.evaluation,
    };
    let score_name = match evaluation {
        Evaluation::Silhouette => "silhouette (higher is better)",
        Evaluation::DbIndex => "Davies-Bouldin index (lower is better)",
        Evaluation::Derivative => "second difference of merge heights (higher is better)",
    };
    let x_name = match by_radius {
        true => "DBSCAN radius eps",
        false => "number of clusters k",
    };
    let mut subtitle = format!("{} candidates tried", candidates.len());
    if let Some((_, _, k)) = chosen {
        subtitle += &format!("; chosen: k = {k}");
        if evaluation != Evaluation::Derivative && cluster.k_tolerance > 0.0 {
            let tolerance = cluster.k_tolerance * 100.0;
            subtitle += &format!(", the smallest within {tolerance:.0} % of the best score");
        }
    }
    Some(Scores {
        title: "Choosing the number of clusters".to_string(),
        subtitle,
        score_name: score_name.to_string(),
        candidates,
        x_name: x_name.to_string(),
        chosen,
    })
}

pub fn variance(input: &ReportInput<'_>) -> Option<Variance> {
    let pca = input.model.pca.as_ref()?;
    let ratios = &pca.explained_variance_ratio;
    let total: f64 = ratios.iter().sum();
    let threshold = match input.params.pca.components {
        ComponentCount::Variance(share) => Some(share),
        ComponentCount::Fixed(_) => None,
    };
    let mut subtitle = format!(
        "{} components kept, explaining {:.1} % of the variance",
        ratios.len(),
        total * 100.0
    );
    if ratios.len() > MAX_COMPONENTS {
        subtitle += &format!("; the first {MAX_COMPONENTS} drawn");
    }
    Some(Variance {
        title: "PCA: explained variance".to_string(),
        subtitle,
        ratios: ratios.iter().take(MAX_COMPONENTS).copied().collect(),
        threshold,
    })
}

pub fn exif(input: &ReportInput<'_>, plan: &Plan) -> Option<ExifFigure> {
    let labels = &input.model.clustering.labels;
    let (plot, points): (ExifPlot, Vec<(f64, f64, Option<usize>)>) = match input.exif.as_ref()? {
        ExifInput::Times(times) => {
            let points = times
                .iter()
                .zip(labels)
                .filter_map(|(time, label)| {
                    Some(((*time)? as f64, label.map(|c| c as f64)?, *label))
                })
                .collect();
            (ExifPlot::Time, points)
        }
        ExifInput::Positions(positions) => {
            let points = positions
                .iter()
                .zip(labels)
                .filter_map(|(p, label)| p.map(|p| (p.longitude_deg, p.latitude_deg, *label)))
                .collect();
            (ExifPlot::Place, points)
        }
    };
    let n_known = points.len();
    let sample = layout::sample(n_known, MAX_PHOTOS, plan.seed);
    let points: Vec<_> = sample.iter().map(|&idx| points[idx]).collect();
    let n_without = labels.len() - n_known;
    let (title, mut subtitle) = match plot {
        ExifPlot::Time => (
            "Photos over time".to_string(),
            format!(
                "photos by when they were taken (EXIF, else the file's time): {n_known}, one \
                 row per cluster; split at gaps over {} h",
                input.params.exif.time_window_h
            ),
        ),
        ExifPlot::Place => (
            "Where the photos were taken".to_string(),
            format!(
                "photos with a GPS position: {n_known}, without: {n_without}; chained within {} m",
                input.params.exif.gps_radius_m
            ),
        ),
    };
    if points.len() < n_known {
        subtitle += &format!("; {} of {n_known} drawn", points.len());
    }
    Some(ExifFigure {
        plot,
        title,
        subtitle,
        points,
        n_clusters: plan.n_clusters(),
        legend: legend_entries(&plan.sizes, plan.n_noise),
    })
}

pub fn unique(input: &ReportInput<'_>, plan: &Plan, thumbnails: &Thumbnails) -> Option<Montage> {
    if plan.n_clusters() == 0 {
        return None;
    }
    // Without mean images (the daemon keeps none) the tiles show the representative alone.
    let with_means = !input.mean_images.is_empty();
    let tiles = (0..plan.n_clusters().min(MAX_UNIQUE))
        .map(|cluster| {
            let mut pictures = vec![picture(thumbnails, plan.representatives[cluster])];
            if with_means {
                pictures.push(match input.mean_images.get(cluster) {
                    Some(image) => Picture::Image(image.clone()),
                    None => Picture::Missing,
                });
            }
            let caption = vec![format!("cluster {cluster}"), images(plan.sizes[cluster])];
            Tile { pictures, caption, frame: None }
        })
        .collect::<Vec<_>>();
    let mut subtitle = if with_means {
        "each cluster's representative (left) and mean image (right)".to_string()
    } else {
        "each cluster's representative".to_string()
    };
    if plan.n_clusters() > MAX_UNIQUE {
        subtitle += &format!("; the {MAX_UNIQUE} largest of {} clusters", plan.n_clusters());
    }
    Some(Montage {
        name: "unique".to_string(),
        title: "Unique images".to_string(),
        subtitle: Some(subtitle),
        tiles,
        picture_px: (130, 130),
        pictures_per_tile: if with_means { 2 } else { 1 },
        caption_lines: 2,
        max_columns: if with_means { 4 } else { 7 },
    })
}

/// Groups of duplicates drawn, at most, and files drawn of each group.
const MAX_DUPLICATE_GROUPS: usize = 24;
const MAX_DUPLICATE_FILES: usize = 4;

/// The groups of duplicates, one tile each: the suggested keeper first, then the other
/// files, with the group's kind and largest distance.
pub fn duplicates(input: &ReportInput<'_>) -> Option<Montage> {
    if input.duplicates.is_empty() {
        return None;
    }
    let shown = &input.duplicates[..input.duplicates.len().min(MAX_DUPLICATE_GROUPS)];
    let widest = shown.iter().map(|group| group.paths.len()).max().unwrap_or(1);
    let per_tile = widest.min(MAX_DUPLICATE_FILES);
    let loaded: Vec<Vec<Picture>> = shown
        .par_iter()
        .map(|group| {
            let mut pictures: Vec<Picture> = group.paths[..group.paths.len().min(per_tile)]
                .iter()
                .map(|path| match input.thumbnails.of_path(path) {
                    Some(image) => Picture::Image(image),
                    None => Picture::Missing,
                })
                .collect();
            if group.paths.len() > per_tile {
                // The last box says how many more there are.
                pictures.pop();
                pictures.push(Picture::More(group.paths.len() - per_tile + 1));
            }
            pictures
        })
        .collect();
    let tiles = shown
        .iter()
        .zip(loaded)
        .enumerate()
        .map(|(group_idx, (group, pictures))| {
            let keeper = layout::shorten(&layout::file_name(&group.paths[0]), 18);
            let caption = vec![
                format!("{group_idx}: {}, distance {}", group.kind, group.max_distance),
                format!("keep: {keeper} (left)"),
            ];
            Tile { pictures, caption, frame: None }
        })
        .collect();
    let mut subtitle =
        "each group's suggested keeper first (more pixels, a larger file, ...)".to_string();
    if input.duplicates.len() > MAX_DUPLICATE_GROUPS {
        subtitle +=
            &format!("; the first {MAX_DUPLICATE_GROUPS} of {} groups", input.duplicates.len());
    }
    Some(Montage {
        name: "duplicates".to_string(),
        title: format!("Duplicates: {} groups", input.duplicates.len()),
        subtitle: Some(subtitle),
        tiles,
        picture_px: (120, 120),
        pictures_per_tile: per_tile,
        caption_lines: 2,
        max_columns: (8 / per_tile).max(1),
    })
}

/// The montage of one cluster's page.
pub fn cluster_page(
    input: &ReportInput<'_>,
    plan: &Plan,
    thumbnails: &Thumbnails,
    cluster: usize,
) -> Montage {
    let capped = plan.page_tiles(cluster);
    let representative = plan.representatives[cluster];
    let mut tiles: Vec<Tile> = capped
        .shown
        .iter()
        .map(|&idx| Tile {
            pictures: vec![picture(thumbnails, idx)],
            caption: vec![layout::shorten(&layout::file_name(&input.paths[idx]), 20)],
            frame: (idx == representative).then_some(HIGHLIGHT),
        })
        .collect();
    if capped.n_more > 0 {
        let caption = vec![String::new()];
        tiles.push(Tile { pictures: vec![Picture::More(capped.n_more)], caption, frame: None });
    }
    let size = plan.sizes[cluster];
    let mut subtitle = "the representative first, framed".to_string();
    if capped.n_more > 0 {
        subtitle += &format!("; {} of {size} shown, a sample", capped.shown.len());
    }
    Montage {
        name: format!("cluster-{cluster}"),
        title: format!("Cluster {cluster}: {}", images(size)),
        subtitle: Some(subtitle),
        tiles,
        picture_px: (150, 150),
        pictures_per_tile: 1,
        caption_lines: 1,
        max_columns: 7,
    }
}

/// "1 image", "2 images".
fn images(n_images: usize) -> String {
    match n_images {
        1 => "1 image".to_string(),
        n => format!("{n} images"),
    }
}

fn picture(thumbnails: &Thumbnails, image_idx: usize) -> Picture {
    match thumbnails.get(image_idx) {
        Some(image) => Picture::Image(image.clone()),
        None => Picture::Missing,
    }
}

/// The distances between the pairs of library images that `find` fitted its null
/// distribution to: the same seeded pairs as [`crate::model::find::fit_null`].
pub fn null_samples(space: ndarray::ArrayView2<'_, f64>, params: &FindParams) -> Vec<f64> {
    let pairs =
        crate::model::distribution::sample_pairs(space.nrows(), params.n_null_pairs, params.seed);
    pairs
        .iter()
        .map(|&(i, j)| crate::model::evaluate::euclidean(space.row(i), space.row(j)))
        .collect()
}

/// See [`super::write_find_report`].
pub fn write_find_report(
    folder: &Path,
    library: &ReportInput<'_>,
    queries: &[FindQuery],
    null: &FittedDistribution,
    params: &FindParams,
) -> Result<WrittenReport, ReportError> {
    let mut montages = Vec::new();
    for (query_idx, query) in queries.iter().enumerate() {
        let montage = find_montage(library, query, query_idx, params);
        montages.push(figure::render(&montage, folder)?);
    }
    let distribution = NullDistribution {
        title: format!("Null distribution of distances: {}", null.kind),
        subtitle: format!(
            "{} random pairs of distinct library images; Kolmogorov-Smirnov statistic {:.3}",
            null.n_samples, null.ks_statistic
        ),
        samples: null_samples(library.model.features.view(), params),
        null: null.clone(),
        alpha: params.alpha,
        hit_distances: queries
            .iter()
            .flat_map(|q| q.hits.iter().take(MAX_HITS).map(|h| h.distance))
            .collect(),
    };
    let distribution = figure::render(&distribution, folder)?;
    let index = super::html::write_find_page(folder, queries, &montages, &distribution, params)?;
    let mut figures = montages;
    figures.push(distribution);
    Ok(WrittenReport { index, figures, pages: Vec::new() })
}

pub fn find_montage(
    library: &ReportInput<'_>,
    query: &FindQuery,
    query_idx: usize,
    params: &FindParams,
) -> Montage {
    let hits = Capped::new(query.hits.clone(), MAX_HITS + 1);
    let indices: BTreeSet<usize> = hits.shown.iter().map(|h| h.image_idx).collect();
    let thumbnails = library.thumbnails.load(&indices);
    let query_paths = [query.path.clone()];
    let query_source =
        ThumbnailSource { paths: &query_paths, stored: None, limits: library.thumbnails.limits };
    let query_thumbnail = query_source.load(&BTreeSet::from([0]));
    let name_of = |path: &PathBuf| layout::shorten(&layout::file_name(path), 20);
    let mut tiles = vec![Tile {
        pictures: vec![picture(&query_thumbnail, 0)],
        caption: vec![name_of(&query.path), "the query".to_string()],
        frame: Some(HIGHLIGHT),
    }];
    tiles.extend(hits.shown.iter().map(|hit| Tile {
        pictures: vec![picture(&thumbnails, hit.image_idx)],
        caption: vec![
            name_of(&library.paths[hit.image_idx]),
            format!("d = {:.3}, p = {:.1e}", hit.distance, hit.p_value),
        ],
        frame: None,
    }));
    if hits.n_more > 0 {
        let caption = vec![String::new(), String::new()];
        tiles.push(Tile { pictures: vec![Picture::More(hits.n_more)], caption, frame: None });
    }
    let mut conditions = Vec::new();
    if let Some(k) = params.k {
        conditions.push(format!("at most {k}"));
    }
    if let Some(alpha) = params.alpha {
        conditions.push(format!("p ≤ {alpha}"));
    }
    if let Some(distance) = params.max_distance {
        conditions.push(format!("distance ≤ {distance}"));
    }
    Montage {
        name: format!("find-{}", query_idx + 1),
        title: format!("Find: {}", layout::file_name(&query.path)),
        subtitle: Some(format!(
            "{} ({}), nearest first: distance d and p-value p",
            match query.hits.len() {
                1 => "1 hit".to_string(),
                n => format!("{n} hits"),
            },
            conditions.join(", ")
        )),
        tiles,
        picture_px: (150, 150),
        pictures_per_tile: 1,
        caption_lines: 2,
        max_columns: 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_shows_the_representative_first_and_caps_the_rest() {
        let members: Vec<usize> = (0..100).collect();
        let tiles = member_tiles(&members, 57, 42, 0);
        assert_eq!(tiles.shown[0], 57);
        assert_eq!(tiles.shown.len(), 41);
        assert_eq!(tiles.n_more, 59);
        assert_eq!(tiles.n_tiles(), 42);
        assert!(!tiles.shown[1..].contains(&57));
        let small = member_tiles(&[3, 5, 8], 5, 42, 0);
        assert_eq!((small.shown, small.n_more), (vec![5, 3, 8], 0));
    }
}
