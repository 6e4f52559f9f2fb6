//! The coordinator store on SQLite (the embedded default: one process). Changes are announced
//! on an in-process channel after each commit.

use crate::dialect::sqlite::*;

pub struct SqliteCoordinatorStore {
    pool: Pool,
    changes: broadcast::Sender<SessionChanged>,
}

impl std::fmt::Debug for SqliteCoordinatorStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteCoordinatorStore")
            .finish_non_exhaustive()
    }
}

impl SqliteCoordinatorStore {
    /// Migrations must have run.
    pub fn new(pool: Pool) -> Self {
        let (changes, _) = broadcast::channel(super::CHANGE_CHANNEL_CAPACITY);
        Self { pool, changes }
    }

    async fn announce(&self, _tx: &mut Tx, _id: SessionId) -> Result<(), StoreError> {
        Ok(())
    }

    fn changed(&self, id: SessionId) {
        let _ = self.changes.send(SessionChanged::now(id));
    }

    fn channel(&self) -> &str {
        ""
    }
}

coordinator_store_impl!(SqliteCoordinatorStore);
