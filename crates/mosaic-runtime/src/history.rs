//! Field history as one caller may read it: the record decides who may
//! (its sharing, deleted or not), changes of fields the caller cannot read
//! are left out.

use crate::access::{self, ObjectOp};
use crate::platform::Platform;
use crate::records::{parse_record_id, Caller};
use mosaic_store::HistoryRow;
use mosaic_types::{ErrorCode, MosaicError, MosaicResult};

impl Platform {
    /// The field history of a record, newest first (at most `limit`):
    /// NOT_FOUND when the caller may not read the record, INVALID_TYPE
    /// when the object does not track history.
    #[tracing::instrument(name = "records.history", skip_all)]
    pub async fn field_history(
        &self,
        c: &Caller,
        object: &str,
        id: &str,
        limit: usize,
    ) -> MosaicResult<Vec<HistoryRow>> {
        let obj = self.meta.object(&c.tenant_id, object).await?;
        access::require(c, &obj, ObjectOp::Read)?;
        let id = parse_record_id(id)?;
        // Deleted records keep their history: the record itself, deleted or
        // not, decides who may read it.
        let generation = self.sharing_generation(&c.tenant_id);
        let slots: Vec<_> = crate::sharing::master_field(&obj)
            .map(|(_, s)| vec![s])
            .unwrap_or_default();
        let row = self
            .records
            .get(&c.tenant_id, obj.id(), &id, &slots)
            .await?;
        let readable = match &row {
            Some(r) => {
                self.record_level(c, &obj, r, generation).await?
                    != mosaic_access::sharing::RecordLevel::None
            }
            None => false,
        };
        if !readable {
            return Err(MosaicError::not_found(format!(
                "The requested resource does not exist: no record with id '{id}'"
            )));
        }
        if !obj.def.enable_history {
            return Err(MosaicError::new(
                ErrorCode::INVALID_TYPE,
                format!(
                    "field history is not enabled on {} (set enable_history)",
                    obj.api_name()
                ),
            ));
        }
        let rows = self.automation.history(&c.tenant_id, &id, limit).await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                obj.field(&r.field)
                    .is_none_or(|f| access::can_read_field(c, f))
            })
            .collect())
    }
}
