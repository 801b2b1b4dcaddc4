//! browser-agent: one Chromium over CDP (chromiumoxide) with a persistent
//! profile, driven by one vocabulary of actions for people (coworkctl) and
//! agent operations (agents-agent, through coworkd's socket).
//!
//! - [`config`]: `[browser]` in config.toml.
//! - [`policy`]: the approval facts (submits, non-GET, password/payment
//!   fields, downloads, outside origins), pure.
//! - [`singleton`]: Chromium's profile lock, removed only when stale.
//! - [`chromium`]: the Chromium process (group, lockfile, stderr tail).
//! - [`devtools`]: its DevTools pipe, served on a private websocket.
//! - [`snapshot`]: the accessibility-tree snapshot with refs (the walk
//!   runs in the page: `page.js`), rendered in a budget.
//! - [`action`]: the actions and what an action did (pure).
//! - [`driver`]: actions on the live browser, with timeouts, hang and
//!   crash recovery; `cdp` (calls with their limit, the page helper's
//!   calls) and `events` (interception, navigations, dialogs, downloads)
//!   beside it.
//! - [`error`]: why an action failed.
//! - [`store`]: the `browser_actions` execution log in cowork.db.
//! - [`screenshots`]: the log's screenshots, as files named by their hash.
//! - [`service`]: `cowork.browser.v1.Browser` ⇄ the driver.

#![warn(missing_docs)]

pub mod action;
mod cdp;
pub mod chromium;
pub mod config;
pub mod devtools;
pub mod driver;
pub mod error;
mod events;
pub mod policy;
pub mod screenshots;
pub mod service;
pub mod singleton;
pub mod snapshot;
pub mod store;
