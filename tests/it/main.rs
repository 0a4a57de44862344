//! Integration tests: the engine and the `clustimage` binary on real image files.
//!
//! One test binary, one module per area; every test works in its own temporary folder.

mod cli;
mod client;
mod common;
mod daemon;
mod dups;
mod engine;
mod find;
mod report;
mod restore;
mod server;
