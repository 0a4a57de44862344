//! The figures, one module per kind. Each is a plain struct that holds what it shows
//! (already capped and sampled) and implements [`super::figure::Figure`]; building them
//! from a fitted model is [`super::build`]'s job.

pub mod dendrogram;
pub mod exif;
pub mod find;
pub mod montage;
pub mod scatter;
pub mod scores;
pub mod variance;
