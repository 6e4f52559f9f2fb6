//! The router store on SQLite (the embedded default: one process, which wakes its waiters
//! in-process).

use crate::dialect::sqlite::*;

router_store_impl!(
    /// [`RouterStore`] on a SQLite pool.
    SqliteRouterStore
);
