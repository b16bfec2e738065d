//! Verifying the audit trail over any [`Store`]: [`verify_audit`] walks
//! every chain with [`tollgate_core::audit::ChainVerifier`] and names the
//! first broken event. Shared by `tollgate audit verify` and the tests.

use tollgate_core::audit::{Anchor, Break, ChainVerifier, PRUNED, pruned_anchors};

use crate::{AuditFilter, Store, StoreError};

/// Events read per page while verifying.
const PAGE: u32 = 1000;

/// What [`verify_audit`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Chains walked.
    pub chains: usize,
    /// Events checked (up to the first break).
    pub events: u64,
    /// The first broken event, if any (chains in name order).
    pub broken: Option<BrokenEvent>,
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenEvent {
    /// The event's cursor (its id in the trail); for a [`Break::Head`], the
    /// chain's last remaining event's, or 0 when none remains.
    pub cursor: u64,
    /// Its chain.
    pub chain: String,
    /// Its position on the chain.
    pub seq: u64,
    /// How.
    pub reason: Break,
}

/// Walks every audit chain from its oldest remaining event to its recorded
/// head, and stops at the first break. A chain whose oldest events are gone
/// must start where the latest `audit.pruned` event's anchor says.
pub async fn verify_audit(store: &dyn Store) -> Result<Verification, StoreError> {
    let heads = store.audit_chains().await?;
    let anchors = latest_anchors(store).await?;
    let mut events = 0;
    for head in &heads {
        let anchor = anchors.iter().find(|a| a.chain == head.chain);
        let mut verifier = ChainVerifier::anchored(anchor);
        let mut after = 0;
        let mut last_cursor = 0;
        loop {
            let page = store.audit_chain_page(&head.chain, after, PAGE).await?;
            for row in &page {
                if let Err(reason) = verifier.check(&row.content(), &row.prev_hash, &row.hash) {
                    return Ok(Verification {
                        chains: heads.len(),
                        events,
                        broken: Some(BrokenEvent {
                            cursor: row.cursor,
                            chain: row.chain.clone(),
                            seq: row.seq,
                            reason,
                        }),
                    });
                }
                events += 1;
                after = row.seq;
                last_cursor = row.cursor;
            }
            if page.len() < PAGE as usize {
                break;
            }
        }
        if let Err(reason) = verifier.finish(head.seq, &head.hash) {
            return Ok(Verification {
                chains: heads.len(),
                events,
                broken: Some(BrokenEvent {
                    cursor: last_cursor,
                    chain: head.chain.clone(),
                    seq: head.seq,
                    reason,
                }),
            });
        }
    }
    Ok(Verification {
        chains: heads.len(),
        events,
        broken: None,
    })
}

/// The anchors of the latest `audit.pruned` event (every pruning names all
/// pruned chains), none when the trail was never pruned.
async fn latest_anchors(store: &dyn Store) -> Result<Vec<Anchor>, StoreError> {
    let filter = AuditFilter {
        kind: Some(PRUNED),
        subject: None,
    };
    let mut after = 0;
    let mut latest = None;
    loop {
        let page = store.audit_after(after, filter, PAGE).await?;
        let full = page.len() == PAGE as usize;
        if let Some(last) = page.into_iter().last() {
            after = last.cursor;
            latest = Some(last);
        }
        if !full {
            break;
        }
    }
    Ok(latest
        .map(|row| pruned_anchors(&row.event.details))
        .unwrap_or_default())
}
