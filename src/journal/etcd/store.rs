//! Reading the journal from etcd in one go (the mirror, at a pinned revision), checking its
//! format mark, and reserving blocks of job ids.

use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp};

use super::{
    decode, prefix_end, EtcdTarget, State, CALL_TIMEOUT, COMMIT_PATIENCE, ID_BLOCK, MAX_REPLY,
    PRUNED_KEY, PRUNE_FLOOR_KEY,
};
use crate::event::Event;
use crate::job::JobId;
use crate::journal::record::JobRecord;
use crate::journal::JournalError;

/// Keys per read when loading the mirror.
const PAGE: i64 = 1024;

/// Reads every record under `prefix` into a fresh mirror: one snapshot (every page at the
/// first page's revision), in pages whose replies may be large (records of big numbers).
pub(super) async fn load(client: &Client, prefix: &str) -> Result<(State, i64), String> {
    let mut kv = client.kv_client().max_decoding_message_size(MAX_REPLY);
    let mut state = State::default();
    let mut from = prefix.as_bytes().to_vec();
    let mut revision = 0;
    let (mut pruned, mut floor) = (0, 0);
    loop {
        let options = GetOptions::new()
            .with_range(prefix_end(prefix))
            .with_limit(PAGE)
            .with_revision(revision);
        let page = tokio::time::timeout(CALL_TIMEOUT, kv.get(from.clone(), Some(options)))
            .await
            .map_err(|_| format!("no answer from etcd within {CALL_TIMEOUT:?}"))?
            .map_err(|e| e.to_string())?;
        if revision == 0 {
            revision = page.header().map_or(0, |h| h.revision());
        }
        for kv in page.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let name = key.strip_prefix(prefix).unwrap_or(&key);
            if let Some(hex) = name.strip_prefix("job/") {
                let id = JobId::from_str_radix(hex, 16).map_err(|e| format!("{key}: {e}"))?;
                let record: JobRecord = decode(kv.key(), kv.value()).map_err(|e| e.to_string())?;
                if record.outcome.is_some() {
                    state.completed += 1;
                } else {
                    state.in_flight += 1;
                }
                state.jobs.insert(id, record);
            } else if let Some(event_key) = name.strip_prefix("event/") {
                let event: Event = decode(kv.key(), kv.value()).map_err(|e| e.to_string())?;
                state.events.insert(event_key.to_string(), event);
            } else if name == PRUNED_KEY {
                pruned = counter(&key, kv.value())?;
            } else if name == PRUNE_FLOOR_KEY {
                floor = counter(&key, kv.value())?;
            }
        }
        match page.kvs().last() {
            Some(last) if page.more() => {
                from = last.key().to_vec();
                from.push(0);
            }
            _ => {
                // The pruned jobs finished too.
                state.completed += pruned;
                state.pruning.absorb(pruned, floor);
                return Ok((state, revision));
            }
        }
    }
}

fn counter(key: &str, value: &[u8]) -> Result<u64, String> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| format!("{key}: expected 8 bytes, found {}", value.len()))
}

/// Refuses a journal in another record format, and marks a new one (or one written before the
/// mark existed) with ours, as the sled backend does.
pub(super) async fn check_format(client: &Client, target: &EtcdTarget) -> Result<(), JournalError> {
    let key = format!("{}format", target.prefix);
    let ours = crate::journal::record::FORMAT;
    let open_error = |reason: String| JournalError::Open {
        path: target.to_string().into(),
        reason,
    };
    let absent = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
    let mark = TxnOp::put(key.clone(), ours.to_be_bytes().to_vec(), None);
    let txn = Txn::new()
        .when([absent])
        .and_then([mark])
        .or_else([TxnOp::get(key, None)]);
    let mut client = client.clone();
    let reply = tokio::time::timeout(CALL_TIMEOUT, client.txn(txn))
        .await
        .map_err(|_| open_error(format!("no answer from etcd within {CALL_TIMEOUT:?}")))?
        .map_err(|e| open_error(e.to_string()))?;
    if reply.succeeded() {
        return Ok(());
    }
    let stored = reply.op_responses().into_iter().find_map(|op| match op {
        etcd_client::TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
        _ => None,
    });
    let found = stored
        .and_then(|bytes| <[u8; 4]>::try_from(bytes.as_slice()).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(|| open_error("its format mark is not a 4-byte number".into()))?;
    if found == ours {
        return Ok(());
    }
    Err(JournalError::Format {
        path: target.to_string().into(),
        found,
        expected: ours,
    })
}

/// Reserves the next block of ids by compare-and-swap on `next_id`, never below `floor`.
pub(super) async fn reserve_ids(
    client: &Client,
    prefix: &str,
    floor: u64,
) -> Result<(u64, u64), String> {
    let mut client = client.clone();
    let key = format!("{prefix}next_id");
    let started = Instant::now();
    loop {
        let attempt = async {
            let current = client.get(key.clone(), None).await?;
            let (stored, compare) = match current.kvs().first() {
                Some(kv) => {
                    let Ok(bytes) = <[u8; 8]>::try_from(kv.value()) else {
                        return Ok(Err(format!("{key} is not an 8-byte id: refusing to guess")));
                    };
                    let revision = kv.mod_revision();
                    (
                        u64::from_be_bytes(bytes),
                        Compare::mod_revision(key.clone(), CompareOp::Equal, revision),
                    )
                }
                None => (1, Compare::version(key.clone(), CompareOp::Equal, 0)),
            };
            let start = stored.max(floor);
            let Some(end) = start.checked_add(ID_BLOCK) else {
                return Ok(Err(format!("{key} is exhausted ({start})")));
            };
            let put = TxnOp::put(key.clone(), end.to_be_bytes().to_vec(), None);
            let swapped = client
                .txn(Txn::new().when([compare]).and_then([put]))
                .await?;
            Ok::<_, etcd_client::Error>(Ok(swapped.succeeded().then_some((start, end))))
        };
        match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
            Ok(Ok(Ok(Some(block)))) => return Ok(block),
            Ok(Ok(Err(damaged))) => return Err(damaged),
            // Another daemon took a block meanwhile: read again.
            Ok(Ok(Ok(None))) => continue,
            Ok(Err(e)) if started.elapsed() > COMMIT_PATIENCE => return Err(e.to_string()),
            Err(_) if started.elapsed() > COMMIT_PATIENCE => {
                return Err(format!("no answer from etcd within {CALL_TIMEOUT:?}"))
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}
