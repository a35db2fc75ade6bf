"""Versioned schema migrations of the state database.

Each entry is (version, SQL). `PRAGMA user_version` records the last one applied.
Never edit a migration that has shipped; append a new one.
"""

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        -- What cacherr put (or adopted) on the fast side. Identity is measured on the
        -- branches, never through the merged view.
        CREATE TABLE cached_files (
            id              INTEGER PRIMARY KEY,
            relative_path   TEXT NOT NULL UNIQUE,  -- share-relative (union) or root-relative (symlink)
            layout          TEXT NOT NULL CHECK (layout IN ('union', 'symlink')),
            original        TEXT NOT NULL CHECK (original IN ('shadow', 'backup', 'move')),
            kind            TEXT NOT NULL CHECK (kind IN ('cached', 'adopted')),
            fast_branch     TEXT NOT NULL,
            fast_size_bytes INTEGER NOT NULL,
            fast_mtime_ns   INTEGER NOT NULL,
            fast_inode      INTEGER NOT NULL,
            slow_branch     TEXT,                   -- NULL when adopted with no slow copy
            slow_size_bytes INTEGER,
            slow_mtime_ns   INTEGER,
            slow_inode      INTEGER,
            backup_name     TEXT,                   -- original: backup
            sidecar_of      TEXT,                   -- relative_path of the video it follows
            cached_at       REAL NOT NULL
        );
        -- Which rules and users want a cached file, and since when.
        CREATE TABLE attributions (
            relative_path     TEXT NOT NULL,
            rule              TEXT NOT NULL,
            user              TEXT NOT NULL DEFAULT '',
            first_selected_at REAL NOT NULL,
            last_selected_at  REAL NOT NULL,
            PRIMARY KEY (relative_path, rule, user)
        );
        -- What happened, for ls/doctor and the curious.
        CREATE TABLE operations (
            id            INTEGER PRIMARY KEY,
            at            REAL NOT NULL,
            action        TEXT NOT NULL,
            relative_path TEXT NOT NULL,
            size_bytes    INTEGER NOT NULL DEFAULT 0,
            outcome       TEXT NOT NULL,
            detail        TEXT NOT NULL DEFAULT ''
        );
        CREATE INDEX operations_at ON operations (at);
        -- `evict --hold D`: files kept out of plans until a time.
        CREATE TABLE holds (
            relative_path TEXT PRIMARY KEY,
            until         REAL NOT NULL
        );
        """,
    ),
    (
        2,
        """
        -- The engine's journal: each action is written before it starts, each step once
        -- it is durable on disk. Recovery reads the unfinished ones at start-up.
        CREATE TABLE journal_actions (
            id            INTEGER PRIMARY KEY,
            kind          TEXT NOT NULL CHECK (kind IN ('cache', 'evict')),
            layout        TEXT NOT NULL,
            original      TEXT NOT NULL,
            relative_path TEXT NOT NULL,
            plan          TEXT NOT NULL,            -- JSON: branches, identities, folders
            state         TEXT NOT NULL DEFAULT 'running'
                          CHECK (state IN ('running', 'done', 'aborted')),
            outcome       TEXT NOT NULL DEFAULT '',
            started_at    REAL NOT NULL,
            finished_at   REAL
        );
        CREATE INDEX journal_actions_running ON journal_actions (state);
        CREATE TABLE journal_steps (
            action_id INTEGER NOT NULL REFERENCES journal_actions (id) ON DELETE CASCADE,
            step      TEXT NOT NULL,
            at        REAL NOT NULL,
            PRIMARY KEY (action_id, step)
        );
        """,
    ),
]

MIGRATIONS.append(
    (
        3,
        """
        -- Rules whose source (Plex, plex.tv, Trakt, or a user's token) is failing, and
        -- since when: the planner keeps what they selected for source_failure_grace.
        CREATE TABLE failing_rules (
            rule  TEXT PRIMARY KEY,
            since REAL NOT NULL,
            why   TEXT NOT NULL DEFAULT ''
        );
        """,
    )
)

MIGRATIONS.append(
    (
        4,
        """
        -- Which Plex item each selected file belongs to, so that plays in Plex's history
        -- can tell when a `keep: {until: watched}` file has been watched.
        CREATE TABLE selected_items (
            relative_path TEXT PRIMARY KEY,
            rating_key    INTEGER,
            item          TEXT NOT NULL DEFAULT ''
        );
        """,
    )
)

MIGRATIONS.append(
    (
        5,
        """
        -- Sidecars (subtitles, posters) are cached_files rows with sidecar_of set; this
        -- says which cached videos brought each one along. A sidecar leaves the fast side
        -- when the last video that references it leaves.
        CREATE TABLE sidecar_refs (
            sidecar TEXT NOT NULL,  -- cached_files.relative_path of the sidecar
            video   TEXT NOT NULL,  -- cached_files.relative_path of a video it travels with
            PRIMARY KEY (sidecar, video)
        );
        CREATE INDEX sidecar_refs_video ON sidecar_refs (video);
        """,
    )
)

MIGRATIONS.append(
    (
        6,
        """
        -- ctime joins a file's identity: a writer that keeps size and mtime (a tagger,
        -- rsync --inplace -t) still changes it. NULL: recorded before cacherr kept it.
        ALTER TABLE cached_files ADD COLUMN fast_ctime_ns INTEGER;
        ALTER TABLE cached_files ADD COLUMN slow_ctime_ns INTEGER;
        -- Symlink layout: the text of cacherr's symlink, so an eviction recognises it.
        ALTER TABLE cached_files ADD COLUMN link_target TEXT;
        -- What a journal step measured (JSON): the copy's temporary inode, the placed
        -- copy's identity, the original's after a rename; recovery tells its own files by it.
        ALTER TABLE journal_steps ADD COLUMN value TEXT;
        """,
    )
)

MIGRATIONS.append(
    (
        7,
        """
        -- The look-ahead window each rule last chose per users and show, and why (`ls`).
        CREATE TABLE lookahead (
            rule       TEXT NOT NULL,
            users      TEXT NOT NULL,  -- user names joined by ', '
            show       TEXT NOT NULL,
            episodes   INTEGER NOT NULL,
            reason     TEXT NOT NULL,
            chosen_at  REAL NOT NULL,
            PRIMARY KEY (rule, users, show)
        );
        """,
    )
)
