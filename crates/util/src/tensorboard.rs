//! TensorBoard event files: scalar summaries and the HParams plugin's summaries, written as
//! TFRecord records (length, masked CRC-32C of the length, the serialised `Event`, masked
//! CRC-32C of it). The messages are declared here with `prost`, with the field numbers of
//! TensorBoard's `event.proto`, `summary.proto` and the HParams plugin's `api.proto` and
//! `plugin_data.proto`; only the fields clirlab writes are declared.

// The messages' fields are those of TensorBoard's .proto files, by the same names.
#![allow(missing_docs)]

use crate::error::{Doing, Error, Result};
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// `tensorflow.Event`.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

/// `tensorflow.TensorProto`, as far as an empty float tensor needs it.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// `DT_FLOAT` = 1.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
}

/// `tensorflow.TensorShapeProto` (a scalar: no dimensions).
#[derive(Clone, PartialEq, Message)]
pub struct TensorShape {}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct HParamsPluginData {
    #[prost(int32, tag = "1")]
    pub version: i32,
    #[prost(oneof = "HParamsData", tags = "2, 3, 4")]
    pub data: Option<HParamsData>,
}

/// Its `data` one-of.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum HParamsData {
    #[prost(message, tag = "2")]
    Experiment(Experiment),
    #[prost(message, tag = "3")]
    SessionStartInfo(SessionStartInfo),
    #[prost(message, tag = "4")]
    SessionEndInfo(SessionEndInfo),
}

/// `tensorboard.hparams.Experiment`.
#[derive(Clone, PartialEq, Message)]
pub struct Experiment {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, repeated, tag = "4")]
    pub hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    pub metric_infos: Vec<MetricInfo>,
    #[prost(string, tag = "6")]
    pub name: String,
}

/// `tensorboard.hparams.HParamInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct HParamInfo {
    #[prost(string, tag = "1")]
    pub name: String,
    /// `DataType`: 1 string, 2 bool, 3 float64.
    #[prost(int32, tag = "4")]
    pub r#type: i32,
    #[prost(message, optional, tag = "5")]
    pub domain_discrete: Option<ListValue>,
}

/// `tensorboard.hparams.MetricInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    pub name: Option<MetricName>,
    #[prost(string, tag = "3")]
    pub display_name: String,
}

/// `tensorboard.hparams.MetricName`.
#[derive(Clone, PartialEq, Message)]
pub struct MetricName {
    #[prost(string, tag = "1")]
    pub group: String,
    #[prost(string, tag = "2")]
    pub tag: String,
}

/// `tensorboard.hparams.SessionStartInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, Value>,
    #[prost(string, tag = "4")]
    pub group_name: String,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct SessionEndInfo {
    /// `Status`: 1 success.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, Message)]
pub struct ListValue {
    #[prost(message, repeated, tag = "1")]
    pub values: Vec<Value>,
}

/// `google.protobuf.Value`: a number, a string or a bool.
#[derive(Clone, PartialEq, Message)]
pub struct Value {
    #[prost(oneof = "Kind", tags = "2, 3, 4")]
    pub kind: Option<Kind>,
}

/// Its `kind` one-of.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    #[prost(double, tag = "2")]
    Number(f64),
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(bool, tag = "4")]
    Bool(bool),
}

impl Value {
    /// A JSON axis value as a protobuf value: numbers and bools as such, the rest as text.
    pub fn from_json(v: &serde_json::Value) -> Value {
        let kind = match v {
            serde_json::Value::Number(n) => Kind::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::Bool(b) => Kind::Bool(*b),
            serde_json::Value::String(s) => Kind::Text(s.clone()),
            other => Kind::Text(other.to_string()),
        };
        Value { kind: Some(kind) }
    }
}

/// The plugin data version the HParams plugin reads.
const HPARAMS_VERSION: i32 = 0;

/// One event file being assembled: its records are written at once by [`EventFile::write`].
pub struct EventFile {
    path: PathBuf,
    records: Vec<u8>,
}

impl EventFile {
    /// A file `dir/events.out.tfevents.<name>` (TensorBoard reads files whose name holds
    /// `tfevents`), starting with the version record every event file has.
    pub fn new(dir: &Path, name: &str) -> EventFile {
        let mut file = EventFile {
            path: dir.join(format!("events.out.tfevents.{name}")),
            records: Vec::new(),
        };
        file.push(Event {
            file_version: Some("brain.Event:2".into()),
            ..Event::default()
        });
        file
    }

    /// A scalar at a step. The wall time is the step: the records hold no clock, so that the
    /// same results give the same file.
    pub fn scalar(&mut self, tag: &str, step: i64, value: f64) {
        let value = SummaryValue {
            tag: tag.into(),
            simple_value: Some(value as f32),
            ..SummaryValue::default()
        };
        self.push(Event {
            wall_time: step as f64,
            step,
            summary: Some(Summary { value: vec![value] }),
            ..Event::default()
        });
    }

    /// The experiment's HParams summary: its hyper-parameters and metrics.
    pub fn hparams_experiment(&mut self, experiment: Experiment) {
        self.hparams("_hparams_/experiment", HParamsData::Experiment(experiment));
    }

    /// One session's (a trained cell's) hyper-parameters.
    pub fn session_start(&mut self, hparams: BTreeMap<String, Value>, group: &str) {
        self.hparams(
            "_hparams_/session_start_info",
            HParamsData::SessionStartInfo(SessionStartInfo {
                hparams,
                group_name: group.into(),
            }),
        );
    }

    /// A session's end, successful.
    pub fn session_end(&mut self) {
        self.hparams(
            "_hparams_/session_end_info",
            HParamsData::SessionEndInfo(SessionEndInfo { status: 1 }),
        );
    }

    fn hparams(&mut self, tag: &str, data: HParamsData) {
        let content = HParamsPluginData {
            version: HPARAMS_VERSION,
            data: Some(data),
        }
        .encode_to_vec();
        let value = SummaryValue {
            tag: tag.into(),
            tensor: Some(TensorProto {
                dtype: 1,
                tensor_shape: Some(TensorShape {}),
            }),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "hparams".into(),
                    content,
                }),
            }),
            ..SummaryValue::default()
        };
        self.push(Event {
            summary: Some(Summary { value: vec![value] }),
            ..Event::default()
        });
    }

    fn push(&mut self, event: Event) {
        let data = event.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        self.records.extend_from_slice(&len);
        self.records.extend_from_slice(&masked_crc(&len).to_le_bytes());
        self.records.extend_from_slice(&data);
        self.records.extend_from_slice(&masked_crc(&data).to_le_bytes());
    }

    /// Writes the file (atomically), creating its folder.
    pub fn write(self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).doing(|| format!("creating {}", dir.display()))?;
        }
        crate::fs::write_atomic(&self.path, &self.records)
    }
}

/// TFRecord's masked CRC-32C.
fn masked_crc(data: &[u8]) -> u32 {
    let crc = crc32c::crc32c(data);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The events of a file's bytes, each record's checksums verified.
pub fn read_events(bytes: &[u8]) -> Result<Vec<Event>> {
    let mut events = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() < 12 {
            return Err(Error::Corrupt("a truncated record header".into()));
        }
        let (len_bytes, after) = rest.split_at(8);
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let crc = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
        if crc != masked_crc(len_bytes) {
            return Err(Error::Corrupt("the length's checksum differs".into()));
        }
        let after = &after[4..];
        if after.len() < len + 4 {
            return Err(Error::Corrupt("a truncated record".into()));
        }
        let (data, after) = after.split_at(len);
        let crc = u32::from_le_bytes(after[..4].try_into().expect("4 bytes"));
        if crc != masked_crc(data) {
            return Err(Error::Corrupt("the record's checksum differs".into()));
        }
        events.push(Event::decode(data).map_err(|e| Error::Corrupt(format!("a record that is not an event: {e}")))?);
        rest = &after[4..];
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_crc_is_tfrecords() {
        // CRC-32C of "123456789" is 0xE3069283 (RFC 3720's check value); masked as TFRecord does.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // Rotated right by 15 bits (0x2507_c60d), plus TFRecord's mask delta 0xa282_ead8.
        assert_eq!(masked_crc(b"123456789"), 0xc78a_b0e5);
    }

    #[test]
    fn records_read_back_and_damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = EventFile::new(dir.path(), "t");
        file.scalar("train/loss", 3, 0.25);
        file.session_start(
            BTreeMap::from([("schedule".into(), Value::from_json(&"linear".into()))]),
            "g",
        );
        let path = file.path.clone();
        file.write().unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let events = read_events(&bytes).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].file_version.as_deref(), Some("brain.Event:2"));
        let value = &events[1].summary.as_ref().unwrap().value[0];
        assert_eq!(
            (events[1].step, value.tag.as_str(), value.simple_value),
            (3, "train/loss", Some(0.25))
        );
        let plugin = events[2].summary.as_ref().unwrap().value[0]
            .metadata
            .clone()
            .unwrap()
            .plugin_data
            .unwrap();
        let data = HParamsPluginData::decode(plugin.content.as_slice()).unwrap();
        assert!(matches!(data.data, Some(HParamsData::SessionStartInfo(s)) if s.group_name == "g"));
        let last = bytes.len() - 5;
        bytes[last] ^= 1;
        assert!(read_events(&bytes).is_err());
    }
}
