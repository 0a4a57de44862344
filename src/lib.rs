//! `clustimage` clusters, deduplicates and searches collections of images.
//!
//! The crate is layered; each module only uses the ones listed before it:
//!
//! - [`cancel`]: the flag that stops long work early;
//! - [`imaging`]: finding, reading, decoding and shrinking image files;
//! - [`features`]: pixels, HOG and perceptual hashes of a thumbnail;
//! - [`model`]: PCA, clustering and the choice of k, embedding, representatives, `find`;
//! - [`index`]: the vector index (HNSW) over a model's projected features;
//! - [`dedup`]: exact copies, duplicates and similar images by perceptual hashes, and
//!   which copy to keep;
//! - [`store`]: the daemon's sled database: files, contents, features;
//! - [`batch`]: the engine run once over a folder or an array, and organising files;
//! - [`report`]: figures (PNG, SVG) and the HTML report of a fitted model and of `find`;
//! - [`daemon`]: the running library: watch, ingest, refit, status and events;
//! - [`server`]: the gRPC API over a running daemon, and its client;
//! - [`cli`]: the `clustimage` command line.
//!
//! See `ARCHITECTURE.md` for the data flow and the invariants.

pub mod batch;
pub mod cancel;
pub mod cli;
pub mod daemon;
pub mod dedup;
pub mod features;
pub mod imaging;
pub mod index;
pub mod model;
pub mod report;
pub mod server;
pub mod store;
