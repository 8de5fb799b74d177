//! Protobuf messages as JSON, by protobuf's own JSON mapping (prost-reflect over the descriptor set
//! the server already embeds for reflection): `/v1/classify` answers `ClassifyResponse` with the
//! gRPC API's fields (lowerCamelCase names, 64-bit integers as strings, defaults included), and
//! Triton's `…/config`, `…/stats` and `/v2/repository/index` answer their gRPC messages the way
//! Triton's HTTP endpoints do (the `.proto` field names, 64-bit integers as numbers).

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::proto::FILE_DESCRIPTOR_SET;

/// How a message is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonStyle {
    /// Protobuf's canonical mapping (lowerCamelCase, 64-bit integers as strings), every field.
    Canonical,
    /// Triton's HTTP JSON: the `.proto` field names, 64-bit integers as numbers, every field.
    Triton,
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).expect("the embedded descriptor set decodes")
    })
}

/// `message` (whose full protobuf name is `name`, e.g. `swin.v1.ClassifyResponse`) as JSON.
pub fn to_json<M: prost::Message>(name: &str, message: &M, style: JsonStyle) -> serde_json::Value {
    let descriptor = pool()
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("{name} is in the embedded descriptor set"));
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message decodes as its own descriptor");
    let options = SerializeOptions::new()
        .skip_default_fields(false)
        .use_proto_field_name(style == JsonStyle::Triton)
        .stringify_64_bit_integers(style == JsonStyle::Canonical);
    let mut serializer = serde_json::Serializer::new(Vec::new());
    dynamic
        .serialize_with_options(&mut serializer, &options)
        .expect("a dynamic message serializes");
    serde_json::from_slice(&serializer.into_inner()).expect("serde_json wrote JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto;

    #[test]
    fn classify_responses_use_protobufs_json_mapping() {
        let response = proto::ClassifyResponse {
            predictions: vec![proto::Prediction {
                class_id: 3,
                label: "cat".into(),
                probability: 0.5,
                logit: 1.0,
            }],
            request_id: "r".into(),
            model: "m".into(),
            timing: Some(proto::Timing {
                total_us: 12,
                ..Default::default()
            }),
            image_width: 0,
            image_height: 0,
        };
        let json = to_json("swin.v1.ClassifyResponse", &response, JsonStyle::Canonical);
        assert_eq!(json["predictions"][0]["classId"], 3);
        assert_eq!(json["requestId"], "r");
        assert_eq!(json["timing"]["totalUs"], "12");
        assert_eq!(json["imageWidth"], 0);
        let json = to_json("swin.v1.ClassifyResponse", &response, JsonStyle::Triton);
        assert_eq!(json["timing"]["total_us"], 12);
    }
}
