//! Tags on every resource type ssmd holds: AddTagsToResource, RemoveTagsFromResource,
//! ListTagsForResource. A resource type ssmd does not hold yet is `InvalidResourceType`; a
//! resource that does not exist (or belongs to another account) is `InvalidResourceId`.

use crate::{Service, amazon, store_error};
use ssmd_model::shapes::*;
use ssmd_model::{ApiError, Caller, ErrorCode};

/// Tags one resource may carry.
pub(crate) const MAX_TAGS: usize = 50;

async fn check_resource(
    svc: &Service,
    caller: &Caller,
    rtype: ResourceTypeForTagging,
    rid: &str,
) -> Result<(), ApiError> {
    let exists = match rtype {
        ResourceTypeForTagging::Document => {
            amazon::find(rid).is_none()
                && svc.store.document(&caller.account, &caller.region, rid).await.map_err(store_error)?.is_some()
        }
        ResourceTypeForTagging::Automation => {
            svc.store.execution(&caller.account, &caller.region, rid).await.map_err(store_error)?.is_some()
        }
        ResourceTypeForTagging::ManagedInstance => {
            svc.store.node(rid).await.map_err(store_error)?.is_some_and(|n| {
                n.account == caller.account && n.region == caller.region && n.deregistered_ms.is_none()
            })
        }
        ResourceTypeForTagging::MaintenanceWindow => {
            svc.store.window(&caller.account, &caller.region, rid).await.map_err(store_error)?.is_some()
        }
        ResourceTypeForTagging::Parameter => crate::parameters::exists(svc, caller, rid).await?,
        other => {
            return Err(ApiError::new(
                ErrorCode::InvalidResourceType,
                format!(
                    "ssmd does not hold resources of type {other} yet; tags can be set on: Document, Automation, ManagedInstance, MaintenanceWindow, Parameter."
                ),
            ));
        }
    };
    if exists {
        Ok(())
    } else {
        Err(ApiError::new(ErrorCode::InvalidResourceId, format!("The {rtype} {rid} does not exist.")))
    }
}

fn too_many() -> ApiError {
    ApiError::new(ErrorCode::TooManyTagsError, format!("A resource can have at most {MAX_TAGS} tags."))
}

fn check_keys<'a>(keys: impl Iterator<Item = &'a String>) -> Result<(), ApiError> {
    for k in keys {
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(crate::errors::validation(
                k,
                "tags.member.key",
                "Tag keys must not start with the reserved prefix aws:",
            ));
        }
    }
    Ok(())
}

/// Checks tags for a resource about to be created, so that a refused request creates nothing.
pub(crate) fn check_new(tags: &[Tag]) -> Result<(), ApiError> {
    check_keys(tags.iter().map(|t| &t.key))?;
    let distinct: std::collections::HashSet<&str> = tags.iter().map(|t| t.key.as_str()).collect();
    if distinct.len() > MAX_TAGS { Err(too_many()) } else { Ok(()) }
}

/// Sets tags on a resource the caller just created or owns (no existence check).
pub(crate) async fn set(svc: &Service, caller: &Caller, rtype: &str, rid: &str, tags: &[Tag]) -> Result<(), ApiError> {
    check_keys(tags.iter().map(|t| &t.key))?;
    let rows: Vec<ssmd_store::Tag> =
        tags.iter().map(|t| ssmd_store::Tag { key: t.key.clone(), value: t.value.clone() }).collect();
    let ok = svc
        .store
        .change_tags(&caller.account, &caller.region, rtype, rid, &rows, &[], MAX_TAGS)
        .await
        .map_err(store_error)?;
    if ok { Ok(()) } else { Err(too_many()) }
}

pub(crate) async fn add(
    svc: &Service,
    caller: &Caller,
    i: AddTagsToResourceRequest,
) -> Result<AddTagsToResourceResult, ApiError> {
    check_resource(svc, caller, i.resource_type, &i.resource_id).await?;
    set(svc, caller, i.resource_type.as_str(), &i.resource_id, &i.tags).await?;
    Ok(AddTagsToResourceResult {})
}

pub(crate) async fn remove(
    svc: &Service,
    caller: &Caller,
    i: RemoveTagsFromResourceRequest,
) -> Result<RemoveTagsFromResourceResult, ApiError> {
    check_resource(svc, caller, i.resource_type, &i.resource_id).await?;
    let rtype = i.resource_type.as_str();
    svc.store
        .change_tags(&caller.account, &caller.region, rtype, &i.resource_id, &[], &i.tag_keys, MAX_TAGS)
        .await
        .map_err(store_error)?;
    Ok(RemoveTagsFromResourceResult {})
}

pub(crate) async fn list(
    svc: &Service,
    caller: &Caller,
    i: ListTagsForResourceRequest,
) -> Result<ListTagsForResourceResult, ApiError> {
    check_resource(svc, caller, i.resource_type, &i.resource_id).await?;
    let rtype = i.resource_type.as_str();
    let tags = svc.store.tags(&caller.account, &caller.region, rtype, &i.resource_id).await.map_err(store_error)?;
    Ok(ListTagsForResourceResult {
        tag_list: Some(tags.into_iter().map(|t| Tag { key: t.key, value: t.value }).collect()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_resource_types_are_the_models() {
        // The store files tags under these names; they must be the wire values.
        assert_eq!(ResourceTypeForTagging::ManagedInstance.as_str(), ssmd_store::NODE_TAGS);
        assert_eq!(crate::documents::RESOURCE_TYPE, "Document");
        assert_eq!(crate::automation::RESOURCE_TYPE, "Automation");
        assert_eq!(ResourceTypeForTagging::MaintenanceWindow.as_str(), ssmd_store::WINDOW_TAGS);
    }
}
