//! Clustering photos by when and where they were taken, from their EXIF fields.
//!
//! Both are DBSCAN with one photo enough to start a cluster, which makes them exact and
//! simple: by time, photos fall apart where the gap between consecutive shots exceeds the
//! window; by place, photos within the radius of each other (haversine distance) chain
//! into one cluster. Photos without the field are noise. The place search compares all
//! pairs, which is fine for photo collections of tens of thousands.

use ndarray::Array2;
use rayon::prelude::*;

use super::cluster::{find_root, Clustering, SearchScore};
use super::{unique, FitParams, Model, ModelError};
use crate::cancel::CancelToken;
use crate::features::FeatureMethod;
use crate::imaging::exif::GpsPosition;

/// Mean Earth radius in metres, for the haversine distance.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Settings of EXIF clustering.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ExifClusterParams {
    /// Photos taken less than this many hours apart belong together. Default 5.
    pub time_window_h: f64,
    /// Photos taken less than this many metres apart belong together. Default 1000.
    pub gps_radius_m: f64,
}

impl Default for ExifClusterParams {
    fn default() -> Self {
        ExifClusterParams { time_window_h: 5.0, gps_radius_m: 1000.0 }
    }
}

/// The EXIF field each image contributes, in image order.
#[derive(Debug, Clone, PartialEq)]
pub enum ExifInput {
    /// Seconds since the Unix epoch.
    Times(Vec<Option<i64>>),
    Positions(Vec<Option<GpsPosition>>),
}

/// Clusters by time or by place; the model's space holds hours or (latitude, longitude).
pub fn fit(
    input: &ExifInput,
    params: &FitParams,
    cancel: &CancelToken,
) -> Result<Model, ModelError> {
    check_params(&params.exif)?;
    let (labels, space) = match input {
        ExifInput::Times(times) => {
            (cluster_times(times, params.exif.time_window_h), time_space(times))
        }
        ExifInput::Positions(positions) => {
            let labels = cluster_positions(positions, params.exif.gps_radius_m, cancel)?;
            (labels, position_space(positions))
        }
    };
    let n_clusters = labels.iter().flatten().max().map_or(0, |max| max + 1);
    let mut representatives = unique::representatives(space.view(), &labels);
    if let ExifInput::Positions(positions) = input {
        refine_by_haversine(&mut representatives, positions, &labels);
    }
    let method = match input {
        ExifInput::Times(_) => FeatureMethod::ExifTime,
        ExifInput::Positions(_) => FeatureMethod::ExifGps,
    };
    let clustering = Clustering {
        n_clusters,
        scores: vec![SearchScore { k: n_clusters, eps: None, score: None }],
        chosen: None,
        fit_indices: (0..labels.len()).collect(),
        dendrogram: Vec::new(),
        labels,
    };
    let cluster_space = super::ClusterSpace::High;
    let features = space;
    Ok(Model {
        method,
        pca: None,
        features,
        cluster_space,
        clustering,
        embedding: None,
        representatives,
    })
}

/// Great-circle distance in metres.
pub fn haversine_m(a: &GpsPosition, b: &GpsPosition) -> f64 {
    let (lat_a, lat_b) = (a.latitude_deg.to_radians(), b.latitude_deg.to_radians());
    let d_lat = lat_b - lat_a;
    let d_lon = (b.longitude_deg - a.longitude_deg).to_radians();
    let h = (d_lat / 2.0).sin().powi(2) + lat_a.cos() * lat_b.cos() * (d_lon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

fn check_params(params: &ExifClusterParams) -> Result<(), ModelError> {
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if !positive(params.time_window_h) {
        let message = format!("{} is not a positive number of hours", params.time_window_h);
        return Err(ModelError::InvalidParameter { field: "time_window_h", message });
    }
    if !positive(params.gps_radius_m) {
        let message = format!("{} is not a positive number of metres", params.gps_radius_m);
        return Err(ModelError::InvalidParameter { field: "gps_radius_m", message });
    }
    Ok(())
}

/// Splits the time line where consecutive photos are more than the window apart;
/// clusters are numbered in time order.
fn cluster_times(times: &[Option<i64>], window_h: f64) -> Vec<Option<usize>> {
    let window_s = window_h * 3600.0;
    let mut order: Vec<usize> = (0..times.len()).filter(|&idx| times[idx].is_some()).collect();
    order.sort_by_key(|&idx| (times[idx], idx));
    let mut labels = vec![None; times.len()];
    let mut cluster = 0;
    let mut previous: Option<i64> = None;
    for idx in order {
        let time = times[idx].expect("filtered to known times");
        if previous.is_some_and(|p| (time - p) as f64 > window_s) {
            cluster += 1;
        }
        labels[idx] = Some(cluster);
        previous = Some(time);
    }
    labels
}

/// Chains photos within the radius of each other: single linkage cut at the radius.
fn cluster_positions(
    positions: &[Option<GpsPosition>],
    radius_m: f64,
    cancel: &CancelToken,
) -> Result<Vec<Option<usize>>, ModelError> {
    let known: Vec<usize> = (0..positions.len()).filter(|&i| positions[i].is_some()).collect();
    let at = |i: usize| positions[known[i]].expect("filtered to known positions");
    let close_pairs: Vec<Vec<usize>> = (0..known.len())
        .into_par_iter()
        .map(|i| {
            (i + 1..known.len()).filter(|&j| haversine_m(&at(i), &at(j)) <= radius_m).collect()
        })
        .collect();
    if cancel.is_cancelled() {
        return Err(ModelError::Cancelled);
    }
    let mut owner: Vec<usize> = (0..known.len()).collect();
    for (i, partners) in close_pairs.iter().enumerate() {
        for &j in partners {
            let (a, b) = (find_root(&mut owner, i), find_root(&mut owner, j));
            owner[a.max(b)] = a.min(b);
        }
    }
    let mut labels = vec![None; positions.len()];
    let mut numbering = std::collections::HashMap::new();
    for i in 0..known.len() {
        let root = find_root(&mut owner, i);
        let next = numbering.len();
        labels[known[i]] = Some(*numbering.entry(root).or_insert(next));
    }
    Ok(labels)
}

/// Hours since the first photo, shape `(n_images, 1)`; unknown times are 0 (and noise).
fn time_space(times: &[Option<i64>]) -> Array2<f64> {
    let first = times.iter().flatten().min().copied().unwrap_or(0);
    let hours = times.iter().map(|t| t.map_or(0.0, |t| (t - first) as f64 / 3600.0));
    Array2::from_shape_vec((times.len(), 1), hours.collect()).expect("one value per image")
}

/// Latitude and longitude in degrees, shape `(n_images, 2)`; unknown positions are 0.
fn position_space(positions: &[Option<GpsPosition>]) -> Array2<f64> {
    let mut space = Array2::zeros((positions.len(), 2));
    for (mut row, position) in space.rows_mut().into_iter().zip(positions) {
        if let Some(p) = position {
            row[0] = p.latitude_deg;
            row[1] = p.longitude_deg;
        }
    }
    space
}

/// Replaces the planar distance to the centre by the haversine distance in metres.
fn refine_by_haversine(
    representatives: &mut [unique::Representative],
    positions: &[Option<GpsPosition>],
    labels: &[Option<usize>],
) {
    for representative in representatives {
        let members: Vec<GpsPosition> = labels
            .iter()
            .zip(positions)
            .filter(|(label, _)| **label == Some(representative.cluster))
            .filter_map(|(_, p)| *p)
            .collect();
        let n = members.len() as f64;
        let centre = GpsPosition {
            latitude_deg: members.iter().map(|p| p.latitude_deg).sum::<f64>() / n,
            longitude_deg: members.iter().map(|p| p.longitude_deg).sum::<f64>() / n,
            altitude_m: None,
        };
        if let Some(chosen) = positions[representative.image_idx] {
            representative.distance_to_centre = haversine_m(&chosen, &centre);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(latitude_deg: f64, longitude_deg: f64) -> Option<GpsPosition> {
        Some(GpsPosition { latitude_deg, longitude_deg, altitude_m: None })
    }

    #[test]
    fn haversine_matches_a_known_distance() {
        // Paris to London is about 343.5 km.
        let paris = at(48.8566, 2.3522).unwrap();
        let london = at(51.5074, -0.1278).unwrap();
        let km = haversine_m(&paris, &london) / 1000.0;
        assert!((km - 343.5).abs() < 1.0, "{km}");
    }

    #[test]
    fn times_split_at_gaps_longer_than_the_window() {
        let hour = 3600;
        let times =
            vec![Some(0), Some(2 * hour), None, Some(20 * hour), Some(4 * hour), Some(21 * hour)];
        let labels = cluster_times(&times, 5.0);
        assert_eq!(labels, vec![Some(0), Some(0), None, Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn positions_chain_within_the_radius() {
        // Two places 500 m apart chain; a third 50 km away stands alone.
        let positions = vec![at(52.0, 5.0), at(52.0045, 5.0), None, at(52.45, 5.0)];
        let labels = cluster_positions(&positions, 1000.0, &CancelToken::new()).unwrap();
        assert_eq!(labels, vec![Some(0), Some(0), None, Some(1)]);
    }

    #[test]
    fn exif_fit_reports_noise_and_representatives() {
        let input = ExifInput::Times(vec![Some(0), None, Some(100), Some(10 * 3600)]);
        let model = fit(&input, &FitParams::default(), &CancelToken::new()).unwrap();
        assert_eq!(model.clustering.n_clusters, 2);
        assert_eq!(model.clustering.labels[1], None);
        assert_eq!(model.representatives.len(), 2);
    }
}
