//! The metadata service's page layouts and list views: create, update and
//! delete them as changes of their object's definition (one version, one
//! cache invalidation, on every instance), the layout a record page uses,
//! and the cleanup when a relationship field or a child object goes.

use crate::layout::{self, apply_layout, derived_layout, LayoutInput, PageLayout};
use crate::listview::{self, all_view, apply_list_view, ListView, ListViewInput};
use crate::model::ObjectMeta;
use crate::service::{MetadataService, INTERNAL_RETRIES};
use chrono::Utc;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};
use std::sync::Arc;

fn layout_not_found(object: &str, id: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: object '{object}' has no layout '{}'",
        id.chars().take(80).collect::<String>()
    ))
}

fn view_not_found(object: &str, id: &str) -> MosaicError {
    MosaicError::not_found(format!(
        "The requested resource does not exist: object '{object}' has no list view '{}'",
        id.chars().take(80).collect::<String>()
    ))
}

/// Exactly one layout is the default: `chosen` if it is, else the first.
fn one_default(layouts: &mut [PageLayout], chosen: &str) {
    let wanted = layouts
        .iter()
        .find(|l| l.id == chosen && l.is_default)
        .map(|l| l.id.clone())
        .or_else(|| layouts.iter().find(|l| l.is_default).map(|l| l.id.clone()))
        .or_else(|| layouts.first().map(|l| l.id.clone()));
    for l in layouts.iter_mut() {
        l.is_default = Some(&l.id) == wanted.as_ref();
    }
}

impl MetadataService {
    /// The object's stored layouts, or the derived one when it has none.
    pub async fn layouts(&self, tenant: &str, object: &str) -> MosaicResult<Vec<PageLayout>> {
        let o = self.object(tenant, object).await?;
        if !o.def.layouts.is_empty() {
            return Ok(o.def.layouts.clone());
        }
        Ok(vec![self.derived(tenant, &o).await?])
    }

    /// The layout record pages of `o` use: its default layout, or the
    /// derived one.
    pub async fn page_layout(&self, tenant: &str, o: &ObjectMeta) -> MosaicResult<PageLayout> {
        match o.def.layouts.iter().find(|l| l.is_default) {
            Some(l) => Ok(l.clone()),
            None => self.derived(tenant, o).await,
        }
    }

    async fn derived(&self, tenant: &str, o: &ObjectMeta) -> MosaicResult<PageLayout> {
        let children = self.children(tenant, &o.def.id).await?;
        let pairs: Vec<_> = children.iter().map(|(c, f)| (&c.def, f)).collect();
        Ok(derived_layout(&o.def, &pairs))
    }

    /// One layout by id or name (`default` names the derived layout while
    /// the object has none).
    pub async fn layout(&self, tenant: &str, object: &str, id: &str) -> MosaicResult<PageLayout> {
        let o = self.object(tenant, object).await?;
        self.layouts(tenant, object)
            .await?
            .into_iter()
            .find(|l| l.id == id || l.name.eq_ignore_ascii_case(id))
            .ok_or_else(|| layout_not_found(&o.def.api_name, id))
    }

    pub async fn add_layout(
        &self,
        tenant: &str,
        object: &str,
        input: LayoutInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, PageLayout)> {
        let requested = input.version;
        let all = self.objects(tenant).await?;
        let defs: Vec<_> = all.iter().map(|o| &o.def).collect();
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, requested)?;
        if cur.def.layouts.len() >= layout::MAX_LAYOUTS {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!("an object may have at most {} layouts", layout::MAX_LAYOUTS),
            ));
        }
        let now = Utc::now();
        let mut l = PageLayout {
            id: mosaic_types::new_id(),
            name: String::new(),
            is_default: cur.def.layouts.is_empty(),
            sections: Vec::new(),
            related_lists: Vec::new(),
            compact_fields: vec!["Name".into()],
            created_at: now,
            updated_at: now,
        };
        if input.sections.is_none() {
            // Start from the derived arrangement, then apply the request.
            let base = self.derived(tenant, &cur).await?;
            l.sections = base.sections;
            l.related_lists = base.related_lists;
            l.compact_fields = base.compact_fields;
        }
        apply_layout(&cur.def, &defs, &mut l, input)?;
        let mut next = cur.def.clone();
        next.layouts.push(l.clone());
        one_default(&mut next.layouts, &l.id);
        let l = next
            .layouts
            .iter()
            .find(|x| x.id == l.id)
            .cloned()
            .unwrap_or(l);
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, l))
    }

    pub async fn update_layout(
        &self,
        tenant: &str,
        object: &str,
        id: &str,
        input: LayoutInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, PageLayout)> {
        let all = self.objects(tenant).await?;
        let defs: Vec<_> = all.iter().map(|o| &o.def).collect();
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        let mut l = cur
            .def
            .layouts
            .iter()
            .find(|l| l.id == id || l.name.eq_ignore_ascii_case(id))
            .cloned()
            .ok_or_else(|| layout_not_found(&cur.def.api_name, id))?;
        apply_layout(&cur.def, &defs, &mut l, input)?;
        let mut next = cur.def.clone();
        if let Some(x) = next.layouts.iter_mut().find(|x| x.id == l.id) {
            *x = l.clone();
        }
        one_default(&mut next.layouts, &l.id);
        let l = next
            .layouts
            .iter()
            .find(|x| x.id == l.id)
            .cloned()
            .unwrap_or(l);
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, l))
    }

    pub async fn delete_layout(&self, tenant: &str, object: &str, id: &str) -> MosaicResult<()> {
        let cur = self.fresh(tenant, object).await?;
        let l = cur
            .def
            .layouts
            .iter()
            .find(|l| l.id == id || l.name.eq_ignore_ascii_case(id))
            .cloned()
            .ok_or_else(|| layout_not_found(&cur.def.api_name, id))?;
        let mut next = cur.def.clone();
        next.layouts.retain(|x| x.id != l.id);
        one_default(&mut next.layouts, "");
        self.commit(tenant, &cur.def, next).await?;
        Ok(())
    }

    /// The list views `user_id` sees: "All", then the object's views
    /// shared with everyone or created by the user.
    pub fn list_views(&self, o: &ObjectMeta, user_id: &str) -> Vec<ListView> {
        std::iter::once(all_view(&o.def))
            .chain(
                o.def
                    .list_views
                    .iter()
                    .filter(|v| v.visible_to(user_id))
                    .cloned(),
            )
            .collect()
    }

    /// One list view by id or name, if `user_id` sees it.
    pub fn list_view(&self, o: &ObjectMeta, id: &str, user_id: &str) -> MosaicResult<ListView> {
        self.list_views(o, user_id)
            .into_iter()
            .find(|v| v.id == id || v.name.eq_ignore_ascii_case(id))
            .ok_or_else(|| view_not_found(&o.def.api_name, id))
    }

    pub async fn add_list_view(
        &self,
        tenant: &str,
        object: &str,
        owner_id: &str,
        input: ListViewInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, ListView)> {
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        if cur.def.list_views.len() >= listview::MAX_LIST_VIEWS {
            return Err(MosaicError::new(
                ErrorCode::LIMIT_EXCEEDED,
                format!(
                    "an object may have at most {} list views",
                    listview::MAX_LIST_VIEWS
                ),
            ));
        }
        let now = Utc::now();
        let mut v = ListView {
            id: mosaic_types::new_id(),
            name: String::new(),
            label: String::new(),
            columns: Vec::new(),
            filter_criteria: None,
            filter_scope: Default::default(),
            sort: Vec::new(),
            row_limit: None,
            visibility: Default::default(),
            owner_id: Some(owner_id.to_string()),
            created_at: now,
            updated_at: now,
        };
        apply_list_view(&cur.def, &mut v, input)?;
        let mut next = cur.def.clone();
        next.list_views.push(v.clone());
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, v))
    }

    pub async fn update_list_view(
        &self,
        tenant: &str,
        object: &str,
        id: &str,
        user_id: &str,
        input: ListViewInput,
    ) -> MosaicResult<(Arc<ObjectMeta>, ListView)> {
        let cur = self.fresh(tenant, object).await?;
        Self::check_version(&cur.def, input.version)?;
        let mut v = cur
            .def
            .list_views
            .iter()
            .find(|v| (v.id == id || v.name.eq_ignore_ascii_case(id)) && v.visible_to(user_id))
            .cloned()
            .ok_or_else(|| view_not_found(&cur.def.api_name, id))?;
        apply_list_view(&cur.def, &mut v, input)?;
        let mut next = cur.def.clone();
        if let Some(x) = next.list_views.iter_mut().find(|x| x.id == v.id) {
            *x = v.clone();
        }
        let m = self.commit(tenant, &cur.def, next).await?;
        Ok((m, v))
    }

    pub async fn delete_list_view(
        &self,
        tenant: &str,
        object: &str,
        id: &str,
        user_id: &str,
    ) -> MosaicResult<()> {
        let cur = self.fresh(tenant, object).await?;
        let v = cur
            .def
            .list_views
            .iter()
            .find(|v| (v.id == id || v.name.eq_ignore_ascii_case(id)) && v.visible_to(user_id))
            .cloned()
            .ok_or_else(|| view_not_found(&cur.def.api_name, id))?;
        let mut next = cur.def.clone();
        next.list_views.retain(|x| x.id != v.id);
        self.commit(tenant, &cur.def, next).await?;
        Ok(())
    }

    /// Removes the related lists (and columns) that went with a deleted
    /// field of `child_id` (or with the whole child object, `field` None)
    /// from every other object's layouts. Best effort: a layout that still
    /// names a missing field skips it when rendered.
    pub(crate) async fn detach_from_parents(
        &self,
        tenant: &str,
        child_id: &str,
        field: Option<&str>,
    ) {
        let Ok(all) = self.objects(tenant).await else {
            return;
        };
        let parents: Vec<String> = all
            .iter()
            .filter(|o| {
                o.def
                    .layouts
                    .iter()
                    .any(|l| l.related_lists.iter().any(|r| r.object_id == child_id))
            })
            .map(|o| o.def.api_name.clone())
            .collect();
        for parent in parents {
            for _ in 0..INTERNAL_RETRIES {
                let Ok(cur) = self.fresh(tenant, &parent).await else {
                    break;
                };
                let mut next = cur.def.clone();
                let changed = match field {
                    Some(f) => layout::remove_child_field(&mut next, child_id, f),
                    None => layout::remove_child_object(&mut next, child_id),
                };
                if !changed {
                    break;
                }
                match self.commit(tenant, &cur.def, next).await {
                    Err(e) if e.code == ErrorCode::CONFLICT => continue,
                    Err(e) => {
                        tracing::warn!(error = %e.message, "a parent's related list was not detached");
                        break;
                    }
                    Ok(_) => break,
                }
            }
        }
    }
}
