//! Every owner of agents-agent's tables in cowork.db, in the order they
//! are migrated. Each owner's steps live beside its SQL, in its domain's
//! `store.rs`; this list only names them. A new domain with tables adds
//! its `OWNER` here.

use cowork_db::Owner;

/// agents-agent's owners, recorded in [`crate::db::LEDGER`].
pub const OWNERS: &[Owner] = &[
    crate::chat::store::OWNER,
    crate::usage::store::OWNER,
    crate::mcp::store::OWNER,
    crate::agent::store::OWNER,
    crate::models::store::OWNER,
    crate::gateway::store::OWNER,
    crate::memory::store::OWNER,
    crate::automation::store::OWNER,
    crate::notifications::store::OWNER,
    crate::apps::store::OWNER,
    crate::audio::store::OWNER,
];
