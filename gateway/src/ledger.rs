//! The gateway's side of the ledger: each request record becomes a ledger
//! row appended to the spool, on the request's own task, before the client
//! sees the end of its answer.

use std::sync::Arc;

use billing::ledger::{LedgerRow, Spool};
use tokio::sync::Notify;

use crate::metrics::Metrics;
use crate::record::{RecordSink, RequestRecord};

/// Writes records to the ledger spool and wakes the writer.
pub struct LedgerSink {
    spool: Arc<Spool>,
    wake: Arc<Notify>,
    metrics: Arc<Metrics>,
}

impl LedgerSink {
    /// A sink over `spool`.
    pub fn new(spool: Arc<Spool>, wake: Arc<Notify>, metrics: Arc<Metrics>) -> Self {
        Self {
            spool,
            wake,
            metrics,
        }
    }
}

/// The ledger row for a record.
pub fn ledger_row(rec: &RequestRecord) -> LedgerRow {
    let ctx = &rec.ctx;
    let key = ctx.caller.key();
    let started_at_ms = ctx
        .started_at
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    LedgerRow {
        request_id: ctx.id,
        started_at_ms,
        org_id: key.map(|k| k.org_id.clone()),
        team_id: key.map(|k| k.team_id.clone()),
        key_id: key.map(|k| k.id.clone()),
        client_format: ctx.format.label().to_owned(),
        endpoint: ctx.endpoint().to_owned(),
        requested_model: ctx.requested_model.clone(),
        provider: ctx.provider.clone(),
        upstream_model: ctx.upstream_model.clone(),
        status: rec.status,
        outcome: rec.end.label().to_owned(),
        usage: rec.usage,
        cost_picousd: rec.cost.0,
        latency_ms: rec.latency.as_millis() as u64,
        ttft_ms: rec.ttft.map(|d| d.as_millis() as u64),
        stream: ctx.stream,
        usage_estimated: rec.usage_source == router::UsageSource::Estimated,
        priced: rec.priced,
        route: ctx.route.clone(),
        attempt: ctx.attempt,
        client_request_id: Some(ctx.client_request_id),
        reference_model: ctx.reference.as_ref().map(|m| m.name.clone()),
        reference_cost_picousd: rec.reference_cost.map(|c| c.0),
        session: ctx.session.as_deref().map(str::to_owned),
    }
}

impl RecordSink for LedgerSink {
    fn record(&self, rec: &RequestRecord) {
        match self.spool.append_row(ledger_row(rec)) {
            Ok(()) => self.wake.notify_one(),
            Err(e) => {
                self.metrics.ledger_spool_errors.inc();
                tracing::error!(request_id = %rec.ctx.id, error = %e, "ledger row could not be spooled");
            }
        }
    }
}
