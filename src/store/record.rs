//! How an alert is kept under its `A` key: a format byte, then the alert in
//! postcard (a compact binary serde format: field names left out, integers
//! and the id as varints). That is 40% of the alert's JSON, and
//! the record is what sled copies around and writes to its log most, so
//! ingest gets cheaper and the store smaller (see the README's performance
//! section). Records written before this format are JSON, which always
//! starts with `{`; both are read, and any other first byte is an error
//! (a damaged record, or a format from a later version), never served.
//!
//! Postcard writes enum variants by position: the variants of `Status`,
//! `Urgency`, `UrgencySource` and `Source` may only be added at the end
//! (`the_binary_form_of_every_enum_variant_is_pinned` fails otherwise).

use sled::IVec;

use super::StoreError;
use crate::alert::Alert;

/// The first byte of a postcard record.
const POSTCARD: u8 = 1;
/// The first byte of a record written as JSON (before postcard).
const JSON: u8 = b'{';

pub fn encode(alert: &Alert) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(alert, vec![POSTCARD]).map_err(|e| corrupt("encoding", e))
}

pub fn decode(bytes: &[u8]) -> Result<Alert, StoreError> {
    match bytes.first() {
        Some(&POSTCARD) => postcard::from_bytes(&bytes[1..]).map_err(|e| corrupt("decoding", e)),
        Some(&JSON) => serde_json::from_slice(bytes).map_err(|e| corrupt("decoding", e)),
        other => Err(unknown(other)),
    }
}

/// A record read from the tree, if there was one.
pub(crate) fn decode_alert(record: Option<IVec>) -> Result<Option<Alert>, StoreError> {
    record.map(|bytes| decode(&bytes)).transpose()
}

/// The alert's JSON as the API serves it. A JSON record is served as it is
/// once it has been read as an alert, so a damaged one is an error here too.
pub fn json(bytes: IVec) -> Result<IVec, StoreError> {
    match bytes.first() {
        Some(&JSON) => decode(&bytes).map(|_| bytes),
        Some(&POSTCARD) => to_json(&decode(&bytes)?).map(IVec::from),
        other => Err(unknown(other)),
    }
}

pub fn to_json(alert: &Alert) -> Result<Vec<u8>, StoreError> {
    // JSON is about 2.5 times the record: one allocation, no regrowth.
    let mut json = Vec::with_capacity(1024);
    serde_json::to_writer(&mut json, alert).map_err(|e| corrupt("encoding", e))?;
    Ok(json)
}

fn unknown(first: Option<&u8>) -> StoreError {
    match first {
        Some(byte) => StoreError::Corrupt(format!("alert record of unknown format {byte}")),
        None => StoreError::Corrupt("empty alert record".into()),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what} an alert record: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertId, NewAlert, Note, SlackRef, Source, Status};
    use crate::urgency::{Urgency, UrgencySource};

    fn alert() -> Alert {
        let mut alert = Alert::open(
            AlertId::first_at(1_732_358_500_123),
            42,
            NewAlert {
                urgency: Urgency::Critical,
                urgency_source: UrgencySource::Message,
                title: "checkout API returning 502s".into(),
                text: "outage critical checkout API returning 502s\nsee grafana".into(),
                source: Source::EventsApi,
                slack: SlackRef {
                    team_id: Some("T061EG9R6".into()),
                    channel_id: "C024BE91L".into(),
                    user_id: Some("U061F7AUR".into()),
                    ts: "1732358500.000100".into(),
                    event_id: Some("Ev08MFMKH6".into()),
                    ..SlackRef::default()
                },
            },
        );
        alert.status = Status::Acknowledged;
        alert.acknowledged_at = Some("2024-11-23T10:41:40.123Z".into());
        alert.acknowledged_by = Some("U0G9QF9C6".into());
        alert.notes.push(Note {
            user: Some("U0G9QF9C6".into()),
            text: "looking — \"db\" \u{1F525}".into(),
            ts: Some("1732358600.000200".into()),
            at: "2024-11-23T10:43:20.000Z".into(),
        });
        alert
    }

    #[test]
    fn a_record_reads_back_as_the_same_alert_and_the_same_json() {
        let alert = alert();
        let record = encode(&alert).unwrap();
        assert_eq!(decode(&record).unwrap(), alert);
        let served = json(IVec::from(record.clone())).unwrap();
        assert_eq!(&served[..], &serde_json::to_vec(&alert).unwrap()[..]);
        assert!(
            record.len() * 2 < served.len(),
            "{} bytes stored for {} of JSON",
            record.len(),
            served.len()
        );
    }

    #[test]
    fn json_records_from_before_the_binary_format_still_read() {
        let alert = alert();
        let old = serde_json::to_vec(&alert).unwrap();
        assert_eq!(decode(&old).unwrap(), alert);
        assert_eq!(json(IVec::from(old.clone())).unwrap(), IVec::from(old));
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        let record = encode(&alert()).unwrap();
        for cut in [1, 2, 10, record.len() - 1] {
            assert!(matches!(
                decode(&record[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[POSTCARD, 0xff, 0xff, 0xff]).is_err());
        // A later format, or a damaged first byte, is never passed on as JSON.
        let mut later = record.clone();
        later[0] = 2;
        assert!(matches!(decode(&later), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            json(IVec::from(later)),
            Err(StoreError::Corrupt(_))
        ));
        assert!(json(IVec::from(&[][..])).is_err());
    }

    #[test]
    fn the_binary_form_of_every_enum_variant_is_pinned() {
        // Stored records hold variants by position: reordering them would
        // silently change what existing records mean.
        fn byte(value: impl serde::Serialize) -> u8 {
            let bytes = postcard::to_allocvec(&value).unwrap();
            assert_eq!(bytes.len(), 1);
            bytes[0]
        }
        use Status::*;
        assert_eq!([Open, Acknowledged, Resolved].map(byte), [0, 1, 2]);
        use Urgency::*;
        assert_eq!([Low, Medium, High, Critical].map(byte), [0, 1, 2, 3]);
        assert_eq!(
            [UrgencySource::Message, UrgencySource::Default].map(byte),
            [0, 1]
        );
        assert_eq!(
            [Source::OutgoingWebhook, Source::EventsApi].map(byte),
            [0, 1]
        );
    }
}
