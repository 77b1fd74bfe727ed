//! One behaviour suite, run against both backends.
//!
//! Each behaviour is an `async fn(TestDb)` written once; `both!(name)` instantiates it as
//! `name::sqlite` and `name::postgres`. SQLite runs on a file in a temporary directory.
//! PostgreSQL runs against the server at `PORTCULLIS_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a fresh schema that is dropped
//! afterwards. An unreachable server fails the PostgreSQL tests: they are never skipped.
//!
//! Run one backend with `cargo test -p portcullis-store --test behaviour ::sqlite` (or
//! `::postgres`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use portcullis_store::migrations;
use portcullis_store::{
    Approval, ApprovalFilter, ApprovalStatus, AuditLine, AuditLineKind, Error, NewApproval,
    Resolution, Store,
};
use serde_json::json;

use harness::TestDb;

/// Instantiates a behaviour for both backends.
macro_rules! both {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::harness::run(super::TestDb::sqlite().await, super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::harness::run(super::TestDb::postgres().await, super::$name).await;
            }
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn new_approval(id: &str, created_at_ms: i64, expires_at_ms: i64) -> NewApproval {
    NewApproval {
        id: id.to_owned(),
        created_at_ms,
        expires_at_ms,
        request_id: format!("req-{id}"),
        principal: "alice".to_owned(),
        tenant: None,
        route: "mcp".to_owned(),
        server: "files".to_owned(),
        tool: "delete_file".to_owned(),
        arguments: json!({"path": "/tmp/x"}),
        findings: json!([]),
        reasons: vec!["destructive tool".to_owned()],
        instance: "gw-1".to_owned(),
    }
}

fn pending(new: &NewApproval) -> Approval {
    Approval {
        request: new.clone(),
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at_ms: None,
        decision_reason: None,
    }
}

fn resolution(status: ApprovalStatus, by: &str, at_ms: i64, reason: Option<&str>) -> Resolution {
    Resolution {
        status,
        by: by.to_owned(),
        reason: reason.map(str::to_owned),
        at_ms,
    }
}

fn audit_line(instance: &str, kind: AuditLineKind, seq: i64) -> AuditLine {
    AuditLine {
        id: 0,
        instance: instance.to_owned(),
        seq,
        kind,
        time_unix_nano: 1_700_000_000_000_000_000 + seq,
        json: format!(r#"{{"seq":{seq},"instance":"{instance}","kind":"{kind}"}}"#),
    }
}

fn record(instance: &str, seq: i64) -> AuditLine {
    audit_line(instance, AuditLineKind::Record, seq)
}

/// Lines as read back, with the store-assigned ids cleared for comparison with the input.
fn without_ids(lines: &[AuditLine]) -> Vec<AuditLine> {
    lines
        .iter()
        .map(|line| AuditLine {
            id: 0,
            ..line.clone()
        })
        .collect()
}

fn assert_ids_ascend(lines: &[AuditLine]) {
    assert!(
        lines.windows(2).all(|pair| pair[0].id < pair[1].id),
        "ids not strictly ascending: {:?}",
        lines.iter().map(|line| line.id).collect::<Vec<_>>()
    );
}

fn ids(approvals: &[Approval]) -> Vec<&str> {
    approvals.iter().map(|a| a.request.id.as_str()).collect()
}

async fn list(store: &Store, status: Option<ApprovalStatus>, limit: u32) -> Vec<Approval> {
    let filter = ApprovalFilter { status, limit };
    store.approvals(&filter).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Migrations

both!(migrations_create_schema_and_reconnect_is_a_no_op);
async fn migrations_create_schema_and_reconnect_is_a_no_op(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.backend(), db.backend());
    store.ping().await.unwrap();
    let version = store.schema_version().await.unwrap();
    assert_eq!(version, migrations::latest_version());
    assert!(version >= 1);

    let again = db.connect_again().await.unwrap();
    assert_eq!(again.schema_version().await.unwrap(), version);
    assert_eq!(db.count("schema_migrations").await, version);
    again.close().await;
}

both!(concurrent_connects_migrate_once);
async fn concurrent_connects_migrate_once(db: TestDb) {
    let config = db.sibling_config();
    let (first, second) = tokio::join!(Store::connect(&config), Store::connect(&config));
    let (first, second) = (first.unwrap(), second.unwrap());
    let latest = migrations::latest_version();
    assert_eq!(first.schema_version().await.unwrap(), latest);
    assert_eq!(second.schema_version().await.unwrap(), latest);
    first.close().await;
    second.close().await;
}

both!(newer_schema_version_is_refused);
async fn newer_schema_version_is_refused(db: TestDb) {
    db.execute_raw(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at_ms) \
         VALUES (9999, 'from_the_future', 'x', 0)",
    )
    .await;
    let err = db.connect_again().await.unwrap_err();
    assert!(
        matches!(&err, Error::Migration(message) if message.contains("newer")),
        "{err}"
    );
}

both!(tampered_checksum_is_refused);
async fn tampered_checksum_is_refused(db: TestDb) {
    db.execute_raw("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
        .await;
    let err = db.connect_again().await.unwrap_err();
    assert!(
        matches!(&err, Error::Migration(message) if message.contains("changed")),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Approvals

both!(approval_round_trips_every_field);
async fn approval_round_trips_every_field(db: TestDb) {
    let store = &db.store;
    let full = NewApproval {
        id: "appr-ünïcødé-🔐".to_owned(),
        created_at_ms: 1_733_000_000_123,
        expires_at_ms: 1_733_000_300_123,
        request_id: "req-7f3a".to_owned(),
        principal: "bob@example.com".to_owned(),
        tenant: Some("tenant-北京".to_owned()),
        route: "mcp".to_owned(),
        server: "files".to_owned(),
        tool: "write_file".to_owned(),
        // Keys deliberately out of alphabetical order: the order must survive.
        arguments: json!({
            "zeta": {"nested": [1, 2.5, -3, null, true, "x\"y\\z\n\t"]},
            "alpha": "日本語 🚀",
            "big": 9_007_199_254_740_993_i64,
            "empty": {},
            "mid": [],
        }),
        findings: json!([{"category": "secret", "score": 0.75, "span": [3, 9]}]),
        reasons: vec![
            "destructive tool".to_owned(),
            "matched «secret» ✓".to_owned(),
            String::new(),
        ],
        instance: "gw-ä".to_owned(),
    };
    let minimal = NewApproval {
        tenant: None,
        reasons: Vec::new(),
        arguments: json!(null),
        findings: json!({}),
        ..new_approval("appr-minimal", 1, 2)
    };
    store.create_approval(&full).await.unwrap();
    store.create_approval(&minimal).await.unwrap();

    let got = store.approval(&full.id).await.unwrap().unwrap();
    assert_eq!(got, pending(&full));
    // `Value`'s equality ignores key order; the serialised text does not.
    assert_eq!(
        serde_json::to_string(&got.request.arguments).unwrap(),
        serde_json::to_string(&full.arguments).unwrap()
    );
    assert_eq!(
        store.approval(&minimal.id).await.unwrap().unwrap(),
        pending(&minimal)
    );
    assert_eq!(store.approval("no-such-approval").await.unwrap(), None);

    let duplicate = store.create_approval(&minimal).await.unwrap_err();
    assert!(matches!(duplicate, Error::Database(_)), "{duplicate}");
}

both!(list_filters_by_status_newest_first_with_limit);
async fn list_filters_by_status_newest_first_with_limit(db: TestDb) {
    let store = &db.store;
    for (id, created) in [("a", 10), ("b", 30), ("c", 20), ("d", 50), ("e", 40)] {
        store
            .create_approval(&new_approval(id, created, 1_000))
            .await
            .unwrap();
    }
    let approve = resolution(ApprovalStatus::Approved, "admin", 60, None);
    store.resolve_approval("b", &approve).await.unwrap();
    let deny = resolution(ApprovalStatus::Denied, "admin", 61, Some("no"));
    store.resolve_approval("d", &deny).await.unwrap();

    assert_eq!(ids(&list(store, None, 0).await), ["d", "e", "b", "c", "a"]);
    assert_eq!(ids(&list(store, None, 2).await), ["d", "e"]);
    assert_eq!(
        ids(&list(store, None, 5000).await),
        ["d", "e", "b", "c", "a"]
    );
    let pending = list(store, Some(ApprovalStatus::Pending), 0).await;
    assert_eq!(ids(&pending), ["e", "c", "a"]);
    assert!(pending.iter().all(|a| a.status == ApprovalStatus::Pending));
    assert_eq!(
        ids(&list(store, Some(ApprovalStatus::Pending), 1).await),
        ["e"]
    );
    assert_eq!(
        ids(&list(store, Some(ApprovalStatus::Approved), 0).await),
        ["b"]
    );
    assert_eq!(
        ids(&list(store, Some(ApprovalStatus::Denied), 0).await),
        ["d"]
    );
    assert!(
        list(store, Some(ApprovalStatus::Expired), 0)
            .await
            .is_empty()
    );

    // Equal creation times are ordered by id, descending, so the order is total.
    store
        .create_approval(&new_approval("f", 50, 1_000))
        .await
        .unwrap();
    assert_eq!(ids(&list(store, None, 3).await), ["f", "d", "e"]);
}

both!(resolve_sets_decision_fields);
async fn resolve_sets_decision_fields(db: TestDb) {
    let store = &db.store;
    let first = new_approval("to-approve", 1, 1_000);
    let second = new_approval("to-deny", 2, 1_000);
    store.create_approval(&first).await.unwrap();
    store.create_approval(&second).await.unwrap();

    let approve = resolution(ApprovalStatus::Approved, "carol", 500, Some("looks fine ✓"));
    let approved = store.resolve_approval(&first.id, &approve).await.unwrap();
    let expected = Approval {
        status: ApprovalStatus::Approved,
        decided_by: Some("carol".to_owned()),
        decided_at_ms: Some(500),
        decision_reason: Some("looks fine ✓".to_owned()),
        ..pending(&first)
    };
    assert_eq!(approved, expected);
    assert_eq!(store.approval(&first.id).await.unwrap().unwrap(), expected);

    let deny = resolution(ApprovalStatus::Denied, "dave", 600, None);
    let denied = store.resolve_approval(&second.id, &deny).await.unwrap();
    let expected = Approval {
        status: ApprovalStatus::Denied,
        decided_by: Some("dave".to_owned()),
        decided_at_ms: Some(600),
        decision_reason: None,
        ..pending(&second)
    };
    assert_eq!(denied, expected);
    assert_eq!(store.approval(&second.id).await.unwrap().unwrap(), expected);
}

both!(resolving_twice_reports_current_status);
async fn resolving_twice_reports_current_status(db: TestDb) {
    let store = &db.store;
    store
        .create_approval(&new_approval("once", 1, 1_000))
        .await
        .unwrap();
    let approve = resolution(ApprovalStatus::Approved, "erin", 10, None);
    let deny = resolution(ApprovalStatus::Denied, "frank", 11, Some("late"));
    store.resolve_approval("once", &approve).await.unwrap();

    let err = store.resolve_approval("once", &deny).await.unwrap_err();
    assert!(
        matches!(&err, Error::AlreadyResolved { id, status: ApprovalStatus::Approved } if id == "once"),
        "{err}"
    );
    let err = store.resolve_approval("once", &approve).await.unwrap_err();
    assert!(
        matches!(
            &err,
            Error::AlreadyResolved {
                status: ApprovalStatus::Approved,
                ..
            }
        ),
        "{err}"
    );
    // The loser changed nothing.
    let stored = store.approval("once").await.unwrap().unwrap();
    assert_eq!(stored.decided_by.as_deref(), Some("erin"));
    assert_eq!(stored.decided_at_ms, Some(10));

    store
        .create_approval(&new_approval("lapsed", 1, 5))
        .await
        .unwrap();
    assert_eq!(store.expire_due(5).await.unwrap(), ["lapsed"]);
    let err = store
        .resolve_approval("lapsed", &approve)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::AlreadyResolved {
                status: ApprovalStatus::Expired,
                ..
            }
        ),
        "{err}"
    );
}

both!(unknown_id_is_not_found);
async fn unknown_id_is_not_found(db: TestDb) {
    let approve = resolution(ApprovalStatus::Approved, "admin", 1, None);
    let err = db
        .store
        .resolve_approval("ghost", &approve)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::NotFound(id) if id == "ghost"),
        "{err}"
    );
}

both!(pending_is_not_a_resolution);
async fn pending_is_not_a_resolution(db: TestDb) {
    let store = &db.store;
    let new = new_approval("stay", 1, 1_000);
    store.create_approval(&new).await.unwrap();
    let back_to_pending = resolution(ApprovalStatus::Pending, "admin", 1, None);
    let err = store
        .resolve_approval("stay", &back_to_pending)
        .await
        .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::InvalidResolution {
                status: ApprovalStatus::Pending,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        store.approval("stay").await.unwrap().unwrap(),
        pending(&new)
    );
}

both!(concurrent_resolves_have_exactly_one_winner);
async fn concurrent_resolves_have_exactly_one_winner(db: TestDb) {
    // Half the rounds race two clones of one pool, half race two independent stores (as two
    // gateway processes would).
    let other_store = db.connect_again().await.unwrap();
    for round in 0..12 {
        let id = format!("race-{round}");
        db.store
            .create_approval(&new_approval(&id, round, 1_000))
            .await
            .unwrap();
        let approver = db.store.clone();
        let denier = if round % 2 == 0 {
            db.store.clone()
        } else {
            other_store.clone()
        };
        let approve = resolution(ApprovalStatus::Approved, "approver", 100, None);
        let deny = resolution(ApprovalStatus::Denied, "denier", 101, Some("race"));
        let (approved, denied) = tokio::join!(
            approver.resolve_approval(&id, &approve),
            denier.resolve_approval(&id, &deny)
        );
        let (winner, loser) = match (approved, denied) {
            (Ok(winner), Err(loser)) | (Err(loser), Ok(winner)) => (winner, loser),
            (approved, denied) => {
                panic!("round {round}: expected one winner: {approved:?} {denied:?}")
            }
        };
        assert!(
            matches!(&loser, Error::AlreadyResolved { status, .. } if *status == winner.status),
            "round {round}: {loser}"
        );
        assert_eq!(db.store.approval(&id).await.unwrap().unwrap(), winner);
    }
    other_store.close().await;
}

both!(expire_due_expires_only_due_pending);
async fn expire_due_expires_only_due_pending(db: TestDb) {
    let store = &db.store;
    store
        .create_approval(&new_approval("due", 1, 100))
        .await
        .unwrap();
    store
        .create_approval(&new_approval("due-now", 2, 150))
        .await
        .unwrap();
    store
        .create_approval(&new_approval("later", 3, 151))
        .await
        .unwrap();
    let decided = new_approval("decided", 4, 50);
    store.create_approval(&decided).await.unwrap();
    let approve = resolution(ApprovalStatus::Approved, "admin", 40, None);
    let approved = store.resolve_approval("decided", &approve).await.unwrap();

    assert_eq!(store.expire_due(150).await.unwrap(), ["due", "due-now"]);
    for id in ["due", "due-now"] {
        let expired = store.approval(id).await.unwrap().unwrap();
        assert_eq!(expired.status, ApprovalStatus::Expired);
        assert_eq!(expired.decided_by.as_deref(), Some("system"));
        assert_eq!(expired.decided_at_ms, Some(150));
    }
    assert_eq!(
        store.approval("later").await.unwrap().unwrap().status,
        ApprovalStatus::Pending
    );
    assert_eq!(store.approval("decided").await.unwrap().unwrap(), approved);
    assert!(store.expire_due(150).await.unwrap().is_empty());
    assert_eq!(store.expire_due(151).await.unwrap(), ["later"]);
}

// ---------------------------------------------------------------------------------------------
// Audit lines

both!(audit_append_reads_back_byte_for_byte);
async fn audit_append_reads_back_byte_for_byte(db: TestDb) {
    let store = &db.store;
    let mut odd = record("gw-a", 3);
    // Unusual but valid text: key order, escapes, spacing and non-ASCII must all survive.
    odd.json =
        "{\"z\":1,  \"a\":\"é\\u0000\\\"🔐\",\"n\":1.0e+2 ,\"k\":{\"b\":[],\"a\":null}}".to_owned();
    let first = vec![record("gw-a", 1), record("gw-a", 2), odd];
    let second = vec![
        audit_line("gw-b", AuditLineKind::Record, 1),
        audit_line("gw-b", AuditLineKind::Checkpoint, 1),
    ];
    store.append_audit(&first).await.unwrap();
    store.append_audit(&second).await.unwrap();
    store.append_audit(&[]).await.unwrap();

    let lines = store.audit_lines(0, 0).await.unwrap();
    assert_ids_ascend(&lines);
    assert!(lines[0].id > 0);
    let expected: Vec<AuditLine> = first.into_iter().chain(second).collect();
    assert_eq!(without_ids(&lines), expected);
    assert_eq!(lines[2].json.as_bytes(), expected[2].json.as_bytes());
}

both!(duplicate_seq_rejects_whole_batch);
async fn duplicate_seq_rejects_whole_batch(db: TestDb) {
    let store = &db.store;
    store.append_audit(&[record("gw-a", 1)]).await.unwrap();

    // A duplicate of a stored line.
    let err = store
        .append_audit(&[record("gw-a", 2), record("gw-a", 3), record("gw-a", 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateAuditLine { instance, kind: AuditLineKind::Record, seq: 1 } if instance == "gw-a"),
        "{err}"
    );
    // A duplicate inside the batch.
    let err = store
        .append_audit(&[record("gw-a", 2), record("gw-a", 2)])
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateAuditLine { seq: 2, .. }),
        "{err}"
    );
    assert_eq!(
        without_ids(&store.audit_lines(0, 0).await.unwrap()),
        [record("gw-a", 1)]
    );

    // The same seq is fine for another kind or another instance, and the store still writes.
    let others = [
        audit_line("gw-a", AuditLineKind::Checkpoint, 1),
        record("gw-b", 1),
        record("gw-a", 2),
    ];
    store.append_audit(&others).await.unwrap();
    assert_eq!(store.audit_lines(0, 0).await.unwrap().len(), 4);
}

both!(last_audit_record_picks_highest_record_seq);
async fn last_audit_record_picks_highest_record_seq(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.last_audit_record("gw-a").await.unwrap(), None);
    // Highest seq, not latest insert; checkpoints and other instances do not count.
    store.append_audit(&[record("gw-a", 3)]).await.unwrap();
    store
        .append_audit(&[record("gw-a", 1), record("gw-a", 2)])
        .await
        .unwrap();
    store
        .append_audit(&[
            audit_line("gw-a", AuditLineKind::Checkpoint, 9),
            record("gw-b", 7),
        ])
        .await
        .unwrap();

    let last = store.last_audit_record("gw-a").await.unwrap().unwrap();
    assert_eq!(
        AuditLine {
            id: 0,
            ..last.clone()
        },
        record("gw-a", 3)
    );
    let all = store.audit_lines(0, 0).await.unwrap();
    assert_eq!(last.id, all[0].id);
    let last_b = store.last_audit_record("gw-b").await.unwrap().unwrap();
    assert_eq!(last_b.seq, 7);
    assert_eq!(store.last_audit_record("gw-c").await.unwrap(), None);
}

both!(audit_lines_page_with_after_id);
async fn audit_lines_page_with_after_id(db: TestDb) {
    let store = &db.store;
    let written: Vec<AuditLine> = (1..=25).map(|seq| record("gw-a", seq)).collect();
    for batch in written.chunks(7) {
        store.append_audit(batch).await.unwrap();
    }
    let mut read = Vec::new();
    let mut after_id = 0;
    let mut pages = Vec::new();
    loop {
        let page = store.audit_lines(after_id, 10).await.unwrap();
        let Some(last) = page.last() else { break };
        after_id = last.id;
        pages.push(page.len());
        read.extend(page);
    }
    assert_eq!(pages, [10, 10, 5]);
    assert_ids_ascend(&read);
    assert_eq!(without_ids(&read), written);
    assert_eq!(store.audit_lines(read[4].id, 3).await.unwrap(), read[5..8]);
    assert_eq!(store.audit_lines(0, 0).await.unwrap().len(), 25);
}

both!(concurrent_appends_keep_every_line_in_id_order);
async fn concurrent_appends_keep_every_line_in_id_order(db: TestDb) {
    let other_store = db.connect_again().await.unwrap();
    let append = |store: Store, instance: &'static str| async move {
        for batch in 0..10 {
            let lines = [
                record(instance, batch * 2 + 1),
                record(instance, batch * 2 + 2),
            ];
            store.append_audit(&lines).await.unwrap();
        }
    };
    tokio::join!(
        append(db.store.clone(), "gw-a"),
        append(other_store.clone(), "gw-b")
    );
    let lines = db.store.audit_lines(0, 0).await.unwrap();
    assert_eq!(lines.len(), 40);
    assert_ids_ascend(&lines);
    for instance in ["gw-a", "gw-b"] {
        let seqs: Vec<i64> = lines
            .iter()
            .filter(|line| line.instance == instance)
            .map(|line| line.seq)
            .collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<_>>(), "{instance}");
    }
    other_store.close().await;
}

// ---------------------------------------------------------------------------------------------
// Durability and lifecycle

both!(second_connection_sees_committed_writes);
async fn second_connection_sees_committed_writes(db: TestDb) {
    let first = &db.store;
    let new = new_approval("durable", 1, 1_000);
    first.create_approval(&new).await.unwrap();
    first.append_audit(&[record("gw-a", 1)]).await.unwrap();

    // An independent pool, as another process would open.
    let second = db.connect_again().await.unwrap();
    assert_eq!(
        second.approval("durable").await.unwrap().unwrap(),
        pending(&new)
    );
    assert_eq!(
        without_ids(&second.audit_lines(0, 0).await.unwrap()),
        [record("gw-a", 1)]
    );

    let approve = resolution(ApprovalStatus::Approved, "admin", 5, None);
    let approved = second.resolve_approval("durable", &approve).await.unwrap();
    second.append_audit(&[record("gw-b", 1)]).await.unwrap();
    second.close().await;

    assert_eq!(first.approval("durable").await.unwrap().unwrap(), approved);
    assert_eq!(first.audit_lines(0, 0).await.unwrap().len(), 2);

    // And after the first closes too, a third still has everything.
    first.close().await;
    let third = db.connect_again().await.unwrap();
    assert_eq!(third.approval("durable").await.unwrap().unwrap(), approved);
    assert_eq!(third.audit_lines(0, 0).await.unwrap().len(), 2);
    third.close().await;
}

both!(closed_store_fails_cleanly);
async fn closed_store_fails_cleanly(db: TestDb) {
    let clone = db.store.clone();
    db.store.close().await;
    let err = clone.ping().await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err}");
}

both!(large_batches_span_several_inserts_in_one_transaction);
/// Batches larger than one multi-row INSERT (200 rows) keep order, and a duplicate in a later
/// chunk still rejects the whole batch and is named.
async fn large_batches_span_several_inserts_in_one_transaction(db: TestDb) {
    let store = &db.store;
    let batch: Vec<AuditLine> = (0..450).map(|seq| record("gw-big", seq)).collect();
    store.append_audit(&batch).await.unwrap();
    let stored = store.audit_lines(0, 1000).await.unwrap();
    assert_eq!(without_ids(&stored), batch);
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));

    let mut again: Vec<AuditLine> = (450..800).map(|seq| record("gw-big", seq)).collect();
    again.push(record("gw-big", 17));
    let err = store.append_audit(&again).await.unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateAuditLine { seq: 17, .. }),
        "{err}"
    );
    assert_eq!(store.audit_lines(0, 1000).await.unwrap().len(), 450);
}
