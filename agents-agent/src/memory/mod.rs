//! Memory: everything captured or said, made searchable (seed 003
//! "Embedding Pipeline", "Database Hardening" → vector index
//! namespacing). This first part holds the pure pieces the pipeline and
//! search are built from: what an item is and which index it goes to
//! ([`item`]), the embedding job's state machine ([`jobs`]), chunking
//! ([`chunk`]), a search's time filter ([`query`]) and hybrid ranking
//! ([`fusion`]). The store, the indexer and the
//! `cowork.memory.v1` service come next (issue 16).

pub mod chunk;
pub mod fusion;
pub mod item;
pub mod jobs;
pub mod query;
