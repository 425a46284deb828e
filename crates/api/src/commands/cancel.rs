//! CancelCommand: invocations not yet picked up end Cancelled at once (their message is
//! withdrawn; ones never sent are passed over by rate control); running ones become Cancelling
//! and their node gets a cancel message, its agent then reports the end. Without InstanceIds the
//! whole command is cancelled and sends nothing more.

use super::*;
use ssmd_core::command::End;
use ssmd_model::Caller;
use std::collections::HashSet;

pub(crate) async fn cancel(
    svc: &Service,
    caller: &Caller,
    i: CancelCommandRequest,
) -> Result<CancelCommandResult, ApiError> {
    svc.store
        .command(&caller.account, &caller.region, &i.command_id)
        .await
        .map_err(store_error)?
        .ok_or_else(invalid_command)?;
    let only: Option<HashSet<String>> = match &i.instance_ids {
        Some(ids) if !ids.is_empty() => {
            let mut set = HashSet::new();
            for id in ids {
                if !set.insert(id.clone()) {
                    return Err(ApiError::new(
                        ErrorCode::DuplicateInstanceId,
                        format!("Instance Id {id} is duplicated."),
                    ));
                }
                if svc
                    .store
                    .invocation(&caller.account, &caller.region, &i.command_id, id)
                    .await
                    .map_err(store_error)?
                    .is_none()
                {
                    return Err(ApiError::new(
                        ErrorCode::InvalidInstanceId,
                        format!("Command {} was not sent to instance {id}.", i.command_id),
                    ));
                }
            }
            Some(set)
        }
        _ => None,
    };
    let now = svc.now_ms();
    let mut failure = None;
    settle(svc, &i.command_id, Scope::Unfinished, None, |row, invocations| {
        failure = None; // a retried transaction decides afresh
        let mut p = match progress(row) {
            Ok(p) => p,
            Err(e) => {
                failure = Some(e);
                return None;
            }
        };
        if p.finished() {
            return None; // nothing left to cancel: a finished command keeps its result
        }
        if only.is_none() {
            p.cancel();
        }
        let mut ends = Ends::default();
        let mut cancelling = Vec::new();
        let mut cancels = Vec::new();
        for mut inv in invocations {
            if only.as_ref().is_some_and(|o| !o.contains(&inv.instance_id)) {
                continue;
            }
            let status = match invocation_status(&inv) {
                Ok(s) => s,
                Err(e) => {
                    failure = Some(e);
                    return None;
                }
            };
            if inv.dispatched_ms.is_none() || not_started(status) {
                ends.end(&mut p, inv, End::Cancelled, now);
            } else if status == InvStatus::InProgress {
                inv.status = InvStatus::Cancelling.to_string();
                inv.status_details = InvStatus::Cancelling.to_string();
                cancels.push((
                    super::delivery::cancel_message_id(&i.command_id, &inv.instance_id),
                    inv.instance_id.clone(),
                ));
                cancelling.push(inv);
            }
        }
        let mut s = ends.into_settlement(settlement(row, &mut p, false)?);
        s.invocations.extend(cancelling);
        s.cancel_messages = cancels;
        Some(s)
    })
    .await?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(CancelCommandResult {})
}
