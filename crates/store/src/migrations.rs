//! Versioned schema migrations, applied in order at start-up, each in one transaction with its
//! record in `ssmd_migrations`. The SQL is written once for both backends (types both accept);
//! on PostgreSQL an advisory lock makes concurrent replicas apply them one at a time.

use crate::{Backend, Result, Store, sql};

/// (version, SQL statements). Append only: never edit a migration that has shipped.
const MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        r#"
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY,
    secret_access_key TEXT NOT NULL,
    account TEXT NOT NULL,
    session_token TEXT,
    expires_ms BIGINT,
    created_ms BIGINT NOT NULL
);
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE documents (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    target_type TEXT,
    default_version BIGINT NOT NULL,
    latest_version BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE TABLE document_versions (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    version_name TEXT,
    content TEXT NOT NULL,
    format TEXT NOT NULL,
    hash TEXT NOT NULL,
    schema_version TEXT,
    description TEXT,
    parameters TEXT NOT NULL,
    platform_types TEXT NOT NULL,
    requires TEXT,
    attachments TEXT,
    display_name TEXT,
    review_status TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account, region, name, version)
);
CREATE UNIQUE INDEX document_versions_by_name ON document_versions (account, region, name, version_name);
CREATE INDEX document_versions_by_hash ON document_versions (account, region, name, hash);
CREATE TABLE document_shares (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    shared_with TEXT NOT NULL,
    shared_version TEXT NOT NULL,
    PRIMARY KEY (account, region, name, shared_with)
);
CREATE INDEX document_shares_by_target ON document_shares (shared_with, region);
CREATE TABLE document_reviews (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    reviewer TEXT NOT NULL,
    status TEXT NOT NULL,
    comment TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account, region, name, version, seq)
);
CREATE TABLE tags (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    tag_value TEXT NOT NULL,
    PRIMARY KEY (account, region, resource_type, resource_id, tag_key)
);
CREATE TABLE idempotency (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    operation TEXT NOT NULL,
    token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account, region, operation, token)
);
"#,
    ),
    (
        2,
        r#"
CREATE TABLE automation_runbooks (
    sha TEXT PRIMARY KEY,
    content TEXT NOT NULL
);
CREATE TABLE automation_executions (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    document_name TEXT NOT NULL,
    status TEXT NOT NULL,
    parent_id TEXT,
    start_ms BIGINT NOT NULL,
    runbook_sha TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    outputs TEXT,
    due_ms BIGINT,
    lease_owner TEXT,
    lease_until BIGINT
);
CREATE INDEX automation_executions_by_start ON automation_executions (account, region, start_ms);
CREATE INDEX automation_executions_by_status ON automation_executions (account, region, status, start_ms, id);
CREATE INDEX automation_executions_by_parent ON automation_executions (parent_id);
CREATE INDEX automation_executions_due ON automation_executions (due_ms)
"#,
    ),
    (
        3,
        r#"
ALTER TABLE access_keys ADD COLUMN user_name TEXT
"#,
    ),
    (
        4,
        r#"
CREATE TABLE activations (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    description TEXT,
    default_instance_name TEXT,
    iam_role TEXT NOT NULL,
    registration_limit BIGINT NOT NULL,
    registrations_count BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    registration_metadata TEXT NOT NULL
);
CREATE INDEX activations_by_created ON activations (account, region, created_ms, id)
"#,
    ),
    (
        5,
        r#"
ALTER TABLE access_keys ADD COLUMN node_id TEXT;
CREATE INDEX access_keys_by_node ON access_keys (node_id);
CREATE TABLE managed_instances (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    activation_id TEXT NOT NULL,
    public_key TEXT NOT NULL,
    public_key_type TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    name TEXT,
    iam_role TEXT NOT NULL,
    registered_ms BIGINT NOT NULL,
    key_updated_ms BIGINT NOT NULL,
    token_ms BIGINT,
    deregistered_ms BIGINT,
    agent_name TEXT,
    agent_version TEXT,
    platform_type TEXT,
    platform_name TEXT,
    platform_version TEXT,
    ip_address TEXT,
    computer_name TEXT,
    last_ping_ms BIGINT
);
CREATE INDEX managed_instances_by_registered ON managed_instances (account, region, registered_ms, id)
"#,
    ),
    (
        6,
        r#"
CREATE TABLE commands (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    requested_ms BIGINT NOT NULL,
    deliver_by_ms BIGINT,
    document_name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    spec TEXT NOT NULL,
    payload TEXT NOT NULL,
    progress TEXT NOT NULL,
    target_count BIGINT NOT NULL,
    completed_count BIGINT NOT NULL,
    error_count BIGINT NOT NULL,
    delivery_timed_out_count BIGINT NOT NULL
);
CREATE INDEX commands_by_requested ON commands (account, region, requested_ms, id);
CREATE INDEX commands_by_deliver_by ON commands (deliver_by_ms);
CREATE TABLE command_invocations (
    command_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    seq BIGINT NOT NULL,
    requested_ms BIGINT NOT NULL,
    instance_name TEXT NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    dispatched_ms BIGINT,
    started_ms BIGINT,
    ended_ms BIGINT,
    response_code BIGINT NOT NULL,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL,
    plugins TEXT NOT NULL,
    PRIMARY KEY (command_id, instance_id)
);
CREATE UNIQUE INDEX command_invocations_by_seq ON command_invocations (command_id, seq);
CREATE INDEX command_invocations_by_instance ON command_invocations (account, region, instance_id, requested_ms);
CREATE TABLE node_messages (
    message_id TEXT PRIMARY KEY,
    destination TEXT NOT NULL,
    command_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload TEXT,
    created_ms BIGINT NOT NULL,
    visible_ms BIGINT NOT NULL,
    deliveries BIGINT NOT NULL,
    acked BIGINT NOT NULL
);
CREATE INDEX node_messages_by_destination ON node_messages (destination, acked, visible_ms);
CREATE INDEX node_messages_by_visible ON node_messages (visible_ms);
CREATE INDEX node_messages_by_command ON node_messages (command_id);
CREATE TABLE command_replies (
    reply_id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    received_ms BIGINT NOT NULL
)
"#,
    ),
    (
        7,
        r#"
CREATE INDEX command_replies_by_received ON command_replies (received_ms)
"#,
    ),
    (
        // The engine's jobs: one table of due work for every capability. Automation's own
        // due/lease columns and Run Command's delivery deadlines move into it.
        8,
        r#"
CREATE TABLE jobs (
    kind TEXT NOT NULL,
    job_key TEXT NOT NULL,
    due_ms BIGINT NOT NULL,
    run_at_ms BIGINT NOT NULL,
    lease_owner TEXT,
    token BIGINT NOT NULL,
    pokes BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    payload TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, job_key)
);
CREATE INDEX jobs_due ON jobs (kind, due_ms);
CREATE TABLE job_links (
    awaited TEXT NOT NULL,
    owner_kind TEXT NOT NULL,
    owner_key TEXT NOT NULL,
    PRIMARY KEY (awaited, owner_kind, owner_key)
);
INSERT INTO jobs (kind, job_key, due_ms, run_at_ms, lease_owner, token, pokes, attempts, payload, created_ms)
    SELECT 'automation', id, due_ms, due_ms, NULL, 0, 0, 0, NULL, start_ms FROM automation_executions
    WHERE due_ms IS NOT NULL;
INSERT INTO jobs (kind, job_key, due_ms, run_at_ms, lease_owner, token, pokes, attempts, payload, created_ms)
    SELECT 'command', id, deliver_by_ms, deliver_by_ms, NULL, 0, 0, 0, NULL, requested_ms FROM commands
    WHERE deliver_by_ms IS NOT NULL;
DROP INDEX automation_executions_due;
ALTER TABLE automation_executions DROP COLUMN due_ms;
ALTER TABLE automation_executions DROP COLUMN lease_owner;
ALTER TABLE automation_executions DROP COLUMN lease_until;
DROP INDEX commands_by_deliver_by;
ALTER TABLE commands DROP COLUMN deliver_by_ms
"#,
    ),
    (
        // A rate-controlled Automation parent's targets: one row each, so a child's end costs
        // the parent the same at any number of targets.
        9,
        r#"
CREATE TABLE automation_targets (
    execution_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    label TEXT NOT NULL,
    parameters TEXT NOT NULL,
    child_id TEXT,
    step_id TEXT,
    status TEXT NOT NULL,
    start_ms BIGINT,
    end_ms BIGINT,
    outputs TEXT,
    reported BIGINT NOT NULL,
    PRIMARY KEY (execution_id, seq)
);
CREATE INDEX automation_targets_by_child ON automation_targets (child_id);
CREATE INDEX automation_targets_unreported ON automation_targets (execution_id, reported)
"#,
    ),
    (
        // Maintenance windows: windows, their targets and tasks, and their executions with one
        // row per task execution and per invocation. An occurrence fires once: (window,
        // scheduled_ms) is unique.
        10,
        r#"
CREATE TABLE maintenance_windows (
    id TEXT PRIMARY KEY,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    spec TEXT NOT NULL,
    revision BIGINT NOT NULL,
    anchor_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    modified_ms BIGINT NOT NULL
);
CREATE INDEX maintenance_windows_by_name ON maintenance_windows (account, region, name, id);
CREATE TABLE resource_counts (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    kind TEXT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (account, region, kind)
);
CREATE TABLE window_targets (
    id TEXT PRIMARY KEY,
    window_id TEXT NOT NULL,
    priority BIGINT NOT NULL,
    spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX window_targets_by_window ON window_targets (window_id, priority, created_ms);
CREATE TABLE window_tasks (
    id TEXT PRIMARY KEY,
    window_id TEXT NOT NULL,
    priority BIGINT NOT NULL,
    spec TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE INDEX window_tasks_by_window ON window_tasks (window_id, priority, created_ms);
CREATE TABLE window_executions (
    id TEXT PRIMARY KEY,
    window_id TEXT NOT NULL,
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    scheduled_ms BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    start_ms BIGINT,
    end_ms BIGINT,
    state TEXT NOT NULL,
    version BIGINT NOT NULL
);
CREATE UNIQUE INDEX window_executions_by_occurrence ON window_executions (window_id, scheduled_ms);
CREATE INDEX window_executions_by_start ON window_executions (window_id, start_ms);
CREATE INDEX window_executions_by_end ON window_executions (end_ms);
CREATE TABLE window_task_executions (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    start_ms BIGINT,
    end_ms BIGINT,
    spec TEXT NOT NULL,
    progress TEXT NOT NULL
);
CREATE INDEX window_task_executions_by_execution ON window_task_executions (execution_id, seq);
CREATE TABLE window_invocations (
    id TEXT PRIMARY KEY,
    task_execution_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    run_id TEXT,
    parameters TEXT NOT NULL,
    status TEXT NOT NULL,
    status_details TEXT NOT NULL,
    start_ms BIGINT,
    end_ms BIGINT,
    owner_information TEXT,
    window_target_id TEXT,
    target TEXT
);
CREATE UNIQUE INDEX window_invocations_by_task ON window_invocations (task_execution_id, seq);
CREATE INDEX window_invocations_by_execution ON window_invocations (execution_id)
"#,
    ),
    (
        11,
        r#"
CREATE TABLE parameters (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    parent TEXT NOT NULL,
    version BIGINT NOT NULL,
    ptype TEXT NOT NULL,
    value TEXT NOT NULL,
    key_id TEXT,
    description TEXT,
    allowed_pattern TEXT,
    tier TEXT NOT NULL,
    data_type TEXT NOT NULL,
    policies TEXT,
    modified_ms BIGINT NOT NULL,
    modified_user TEXT NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE INDEX parameters_by_parent ON parameters (account, region, parent, name);
CREATE TABLE parameter_versions (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    ptype TEXT NOT NULL,
    value TEXT NOT NULL,
    key_id TEXT,
    description TEXT,
    allowed_pattern TEXT,
    tier TEXT NOT NULL,
    data_type TEXT NOT NULL,
    policies TEXT,
    modified_ms BIGINT NOT NULL,
    modified_user TEXT NOT NULL,
    PRIMARY KEY (account, region, name, version)
);
CREATE TABLE parameter_labels (
    account TEXT NOT NULL,
    region TEXT NOT NULL,
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (account, region, name, label)
)
"#,
    ),
];

pub(crate) async fn run(store: &Store) -> Result<()> {
    if store.backend == Backend::Sqlite {
        store.db.execute_batch("CREATE TABLE IF NOT EXISTS ssmd_migrations (version BIGINT PRIMARY KEY)").await?;
    }
    let mut tx = store.db.begin().await?;
    // A replica may wait here while another applies migrations, and a migration may take long.
    tx.without_time_limits().await?;
    if store.backend == Backend::Postgres {
        // Replicas starting together apply migrations one at a time: the transaction holds an
        // advisory lock. (One process owns an SQLite file; its write connection serialises.)
        sql::query("SELECT pg_advisory_xact_lock(7437146)").execute(&mut tx).await?;
        sql::query("CREATE TABLE IF NOT EXISTS ssmd_migrations (version BIGINT PRIMARY KEY)").execute(&mut tx).await?;
    }
    let applied: Vec<i64> = sql::query("SELECT version FROM ssmd_migrations")
        .fetch_all(&mut tx)
        .await?
        .iter()
        .map(|r| r.first())
        .collect::<Result<_>>()?;
    for (version, stmts) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        for stmt in stmts.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sql::query(stmt).execute(&mut tx).await?;
        }
        sql::query("INSERT INTO ssmd_migrations (version) VALUES ($1)").bind(*version).execute(&mut tx).await?;
    }
    tx.commit().await
}
