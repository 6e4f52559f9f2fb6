//! The router store on PostgreSQL: a committed delivery notifies [`super::NOTIFY_CHANNEL`].

use crate::dialect::postgres::*;

router_store_impl!(
    /// [`RouterStore`] on a PostgreSQL pool (its `search_path` selects the schema).
    PgRouterStore
);
