use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use proptest::prelude::*;

use super::*;

/// Encodes `request` as a whole frame (header + body, no size prefix).
fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, request: &R) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("rdkafka")))
        .encode(&mut buf, R::header_version(version))
        .expect("header");
    request.encode(&mut buf, version).expect("body");
    buf.to_vec()
}

fn header_len(key: ApiKey, version: i16) -> usize {
    let flexible = key.request_header_version(version) >= 2;
    8 + 2 + "rdkafka".len() + usize::from(flexible)
}

fn list_offsets() -> ListOffsetsRequest {
    ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
            .with_name(StrBytes::from_static_str("orders").into())
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ])])
}

fn fetch() -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(500)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(StrBytes::from_static_str("orders").into())
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(42)
                .with_partition_max_bytes(1 << 20)])])
}

fn join_group() -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(StrBytes::from_static_str("billing").into())
        .with_session_timeout_ms(10_000)
        .with_member_id(StrBytes::from_static_str(""))
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(StrBytes::from_static_str("range"))
        .with_metadata(Bytes::from_static(b"\x00\x01"))])
}

fn create_topics() -> CreateTopicsRequest {
    CreateTopicsRequest::default().with_topics(vec![
        create_topics_request::CreatableTopic::default()
            .with_name(StrBytes::from_static_str("orders").into())
            .with_num_partitions(3)
            .with_replication_factor(1)
            .with_configs(vec![create_topics_request::CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("1000")))]),
    ])
}

fn produce() -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(StrBytes::from_static_str("orders").into())
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from_static(&[0u8; 70]))),
            ])])
}

/// Overwrites the four bytes at `at` with `value`.
fn put_i32(frame: &mut [u8], at: usize, value: i32) {
    frame[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

#[test]
fn well_formed_requests_pass_and_consume_the_whole_frame() {
    for version in 1..=9 {
        let f = frame(ApiKey::ListOffsets, version, &list_offsets());
        assert_eq!(check_request(&f), Ok(f.len()), "ListOffsets v{version}");
    }
    for version in 4..=17 {
        let f = frame(ApiKey::Fetch, version, &fetch());
        assert_eq!(check_request(&f), Ok(f.len()), "Fetch v{version}");
    }
    for version in 0..=9 {
        let f = frame(ApiKey::JoinGroup, version, &join_group());
        assert_eq!(check_request(&f), Ok(f.len()), "JoinGroup v{version}");
    }
    for version in 2..=7 {
        let f = frame(ApiKey::CreateTopics, version, &create_topics());
        assert_eq!(check_request(&f), Ok(f.len()), "CreateTopics v{version}");
    }
    for version in 3..=11 {
        let f = frame(ApiKey::Produce, version, &produce());
        assert_eq!(check_request(&f), Ok(f.len()), "Produce v{version}");
    }
}

/// The four allocations from the issue: an array count of ~2^31 in a short frame.
#[test]
fn list_offsets_with_a_huge_partition_count_is_refused() {
    let version = 1; // classic encoding: i32 counts
    let mut f = frame(ApiKey::ListOffsets, version, &list_offsets());
    // replica id (4) + topics count (4) + name (2 + 6) -> partitions count
    let at = header_len(ApiKey::ListOffsets, version) + 4 + 4 + 8;
    put_i32(&mut f, at, 0x7fff_ffff);
    let err = check_request(&f).expect_err("must refuse");
    let text = err.to_string();
    assert!(text.contains("Topics[0].Partitions"), "{text}");
    assert!(text.contains("2147483647 elements"), "{text}");
}

#[test]
fn join_group_with_a_huge_protocol_count_is_refused() {
    let version = 5;
    let mut f = frame(ApiKey::JoinGroup, version, &join_group());
    let body = header_len(ApiKey::JoinGroup, version);
    // group id (2+7), session timeout, rebalance timeout, member id (2),
    // group instance id (2, null), protocol type (2+8) -> protocols count
    let at = body + 9 + 4 + 4 + 2 + 2 + 10;
    assert_eq!(&f[at..at + 4], &1i32.to_be_bytes());
    put_i32(&mut f, at, 0x2aaa_aaaa);
    assert!(check_request(&f).is_err());
}

#[test]
fn fetch_with_a_huge_topic_count_is_refused_in_classic_and_compact_encodings() {
    let mut f = frame(ApiKey::Fetch, 11, &fetch());
    // replica, max wait, min bytes, max bytes, isolation, session id, epoch
    let at = header_len(ApiKey::Fetch, 11) + 4 + 4 + 4 + 4 + 1 + 4 + 4;
    put_i32(&mut f, at, 0x7fff_fff0);
    assert!(check_request(&f).is_err());

    let mut f = frame(ApiKey::Fetch, 12, &fetch());
    let at = header_len(ApiKey::Fetch, 12) + 4 + 4 + 4 + 4 + 1 + 4 + 4;
    assert_eq!(f[at], 2, "compact count of one topic");
    // uvarint 0xffffffff: 5 bytes, replaces the count and the next 4 bytes
    f.splice(at..at + 1, [0xff, 0xff, 0xff, 0xff, 0x0f]);
    let err = check_request(&f).expect_err("must refuse");
    assert!(err.to_string().contains("Topics"), "{err}");
}

#[test]
fn create_topics_with_a_huge_config_count_is_refused() {
    let version = 4;
    let mut f = frame(ApiKey::CreateTopics, version, &create_topics());
    // topics count (4), name (2+6), partitions (4), replication (2),
    // assignments count (4) -> configs count
    let at = header_len(ApiKey::CreateTopics, version) + 4 + 8 + 4 + 2 + 4;
    assert_eq!(&f[at..at + 4], &1i32.to_be_bytes());
    put_i32(&mut f, at, 0x7fff_ffff);
    assert!(check_request(&f).is_err());
}

#[test]
fn nulls_negative_lengths_and_truncation_are_refused() {
    let version = 1;
    let base = frame(ApiKey::ListOffsets, version, &list_offsets());
    let at = header_len(ApiKey::ListOffsets, version) + 4;
    let mut f = base.clone();
    put_i32(&mut f, at, -1); // topics is not nullable
    assert!(check_request(&f)
        .unwrap_err()
        .to_string()
        .contains("null array"));
    put_i32(&mut f, at, -5);
    assert!(check_request(&f)
        .unwrap_err()
        .to_string()
        .contains("negative"));
    for cut in 0..base.len() {
        assert!(check_request(&base[..cut]).is_err(), "truncated at {cut}");
    }
}

#[test]
fn unknown_keys_and_versions_are_refused() {
    let mut f = frame(ApiKey::Fetch, 12, &fetch());
    f[2..4].copy_from_slice(&999i16.to_be_bytes());
    assert!(matches!(
        check_request(&f),
        Err(WireError::UnknownVersion { version: 999, .. })
    ));
    f[0..2].copy_from_slice(&999i16.to_be_bytes());
    assert_eq!(check_request(&f), Err(WireError::UnknownApi(999)));
}

#[test]
fn a_tagged_field_must_fill_its_declared_size() {
    // Fetch v12+: tag 0 is ClusterId (a compact nullable string).
    let version = 12;
    let request = fetch().with_cluster_id(Some(StrBytes::from_static_str("abc")));
    let f = frame(ApiKey::Fetch, version, &request);
    assert_eq!(check_request(&f), Ok(f.len()));
    // The body's tagged fields come last: count 1, tag 0, size 4, "\x04abc".
    let n = f.len();
    assert_eq!(&f[n - 7..], &[1, 0, 4, 4, b'a', b'b', b'c']);
    let mut g = f.clone();
    g[n - 5] = 3; // size says 3, the value takes 4
    assert!(check_request(&g).is_err());
    let mut g = f.clone();
    g[n - 5] = 100; // size beyond the frame
    assert!(check_request(&g).is_err());
    // An unknown tag is skipped by its size.
    let mut g = f[..n - 7].to_vec();
    g.extend_from_slice(&[1, 9, 2, 0xde, 0xad]);
    assert_eq!(check_request(&g), Ok(g.len()));
}

#[test]
fn responses_are_checked_too() {
    let response = MetadataResponse::default().with_brokers(vec![
        metadata_response::MetadataResponseBroker::default()
            .with_node_id(0.into())
            .with_host(StrBytes::from_static_str("localhost"))
            .with_port(9092),
    ]);
    for version in 0..=12 {
        let mut buf = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(1)
            .encode(&mut buf, MetadataResponse::header_version(version))
            .expect("header");
        response.encode(&mut buf, version).expect("body");
        let f = buf.to_vec();
        assert_eq!(check_response(3, version, &f), Ok(f.len()), "v{version}");
        let header = if version >= 9 { 5 } else { 4 };
        assert_eq!(
            check_response_body(3, version, &f[header..]),
            Ok(f.len() - header)
        );
    }
    // A v1 response claiming 2^31 brokers.
    let mut buf = BytesMut::new();
    buf.put_i32(1); // correlation id
    buf.put_i32(0); // throttle? (v3+) -- v1 has none: brokers count first
    let mut f = buf.to_vec();
    put_i32(&mut f, 4, 0x7fff_ffff);
    assert!(check_response(3, 1, &f).is_err());
}

#[test]
fn header_versions_follow_the_flexible_versions() {
    assert_eq!(request_header_version(1, 11), Some(1));
    assert_eq!(request_header_version(1, 12), Some(2));
    assert_eq!(response_header_version(1, 12), Some(1));
    assert_eq!(
        response_header_version(18, 3),
        Some(0),
        "ApiVersions stays v0"
    );
    assert_eq!(request_versions(0).map(|v| v.0), Some(0));
    assert!(request_versions(-5).is_none());
}

fn decodes(f: &[u8]) -> bool {
    let mut buf = Bytes::copy_from_slice(f);
    let key = i16::from_be_bytes([f[0], f[1]]);
    let version = i16::from_be_bytes([f[2], f[3]]);
    let Ok(api) = ApiKey::try_from(key) else {
        return false;
    };
    if RequestHeader::decode(&mut buf, api.request_header_version(version)).is_err() {
        return false;
    }
    match api {
        ApiKey::ListOffsets => ListOffsetsRequest::decode(&mut buf, version).is_ok(),
        ApiKey::Fetch => FetchRequest::decode(&mut buf, version).is_ok(),
        ApiKey::JoinGroup => JoinGroupRequest::decode(&mut buf, version).is_ok(),
        ApiKey::CreateTopics => CreateTopicsRequest::decode(&mut buf, version).is_ok(),
        ApiKey::Produce => ProduceRequest::decode(&mut buf, version).is_ok(),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever the mutation, a frame the check accepts is one the decoder
    /// reads, and the check itself never panics.
    #[test]
    fn accepted_mutations_decode(
        which in 0usize..5,
        version_pick in 0i16..20,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let (key, lo, hi) = [
            (ApiKey::ListOffsets, 1, 9),
            (ApiKey::Fetch, 4, 17),
            (ApiKey::JoinGroup, 0, 9),
            (ApiKey::CreateTopics, 2, 7),
            (ApiKey::Produce, 3, 11),
        ][which];
        let version = lo + version_pick % (hi - lo + 1);
        let mut f = match key {
            ApiKey::ListOffsets => frame(key, version, &list_offsets()),
            ApiKey::Fetch => frame(key, version, &fetch()),
            ApiKey::JoinGroup => frame(key, version, &join_group()),
            ApiKey::CreateTopics => frame(key, version, &create_topics()),
            _ => frame(key, version, &produce()),
        };
        for (at, byte) in flips {
            let i = 4 + at.index(f.len() - 4); // keep key and version
            f[i] = byte;
        }
        if truncate {
            let n = 4 + cut.index(f.len() - 4);
            f.truncate(n);
        }
        if check_request(&f).is_ok() {
            prop_assert!(decodes(&f), "accepted but undecodable: {:?}", f);
        }
    }
}

/// The throttle time sits first in most responses and last in Produce's; the offset found
/// is where the codec wrote it, in every version that has it.
#[test]
fn throttle_time_offsets_are_where_the_codec_writes_them() {
    fn check<R: Encodable + Default>(
        key: ApiKey,
        response: R,
        versions: std::ops::RangeInclusive<i16>,
    ) {
        for version in versions {
            let mut buf = BytesMut::new();
            response.encode(&mut buf, version).expect("body");
            let at = response_field_offset(key as i16, version, &buf, "ThrottleTimeMs")
                .unwrap_or_else(|| panic!("{key:?} v{version}: no ThrottleTimeMs"));
            assert_eq!(
                &buf[at..at + 4],
                &1234i32.to_be_bytes(),
                "{key:?} v{version}"
            );
        }
    }
    let partition = produce_response::PartitionProduceResponse::default().with_index(3);
    let produce = ProduceResponse::default()
        .with_responses(vec![produce_response::TopicProduceResponse::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_responses(vec![partition])])
        .with_throttle_time_ms(1234);
    check(ApiKey::Produce, produce, 3..=11);
    check(
        ApiKey::Fetch,
        FetchResponse::default().with_throttle_time_ms(1234),
        4..=16,
    );
    check(
        ApiKey::Metadata,
        MetadataResponse::default().with_throttle_time_ms(1234),
        3..=12,
    );
    let none = response_field_offset(ApiKey::Metadata as i16, 0, &[0, 0, 0, 0], "ThrottleTimeMs");
    assert_eq!(none, None, "Metadata v0 has no throttle time");
}

#[test]
fn records_fields_of_a_fetch_response_are_found_in_wire_order() {
    use fetch_response::{FetchableTopicResponse, PartitionData};
    let partition = |i: i32, records: Option<&'static [u8]>| {
        PartitionData::default()
            .with_partition_index(i)
            .with_records(records.map(Bytes::from_static))
    };
    let response = FetchResponse::default().with_responses(vec![
        FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("a")))
            .with_partitions(vec![partition(0, Some(b"first")), partition(1, None)]),
        FetchableTopicResponse::default()
            .with_topic(TopicName(StrBytes::from_static_str("b")))
            .with_partitions(vec![
                partition(0, Some(b"")),
                partition(1, Some(b"last one")),
            ]),
    ]);
    for version in [4, 11, 12, 16] {
        let mut body = BytesMut::new();
        response.encode(&mut body, version).expect("encode");
        let found =
            response_records_fields(ApiKey::Fetch as i16, version, &body).expect("well formed");
        let compact = version >= 12;
        let contents: Vec<Option<&[u8]>> = found
            .iter()
            .map(|f| f.len.map(|len| &body[f.data_at..f.data_at + len]))
            .collect();
        assert_eq!(
            contents,
            vec![
                Some(&b"first"[..]),
                None,
                Some(&b""[..]),
                Some(&b"last one"[..])
            ],
            "v{version}"
        );
        for f in &found {
            assert_eq!(f.compact, compact, "v{version}");
            assert_eq!(
                f.data_at - f.length_at,
                if compact { 1 } else { 4 },
                "v{version}"
            );
        }
        // A body that does not end where the message does is refused.
        body.put_u8(0);
        assert!(response_records_fields(ApiKey::Fetch as i16, version, &body).is_err());
    }
}
