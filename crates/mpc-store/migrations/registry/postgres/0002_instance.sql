-- The process instance behind each announcement (random, fresh at every start): a new one means
-- the party restarted and lost the protocol state of the sessions it was running.
ALTER TABLE mpc_party_registry ADD COLUMN instance_id TEXT NOT NULL DEFAULT '';
