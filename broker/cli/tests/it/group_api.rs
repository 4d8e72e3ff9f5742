//! runnel-client's group admin calls against a real `runnel dev` broker,
//! for the calls the CLI does not expose (OffsetDelete) and the member API.

use std::sync::Arc;
use std::time::Duration;

use runnel_client::{
    Client, ClientConfig, Committer, GroupConsumer, GroupConsumerConfig, OffsetCommit, OffsetReset,
    ResponseError, TopicPartitions,
};

use crate::harness::DevBroker;

fn commit(topic: &str, partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: topic.into(),
        partition,
        offset,
        metadata: Some(format!("p{partition}")),
    }
}

#[test]
fn offset_delete_removes_only_the_named_partitions_commit() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "od", "--partitions", "2"], b"");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = Client::connect(ClientConfig::new(broker.kafka.clone()))
            .await
            .expect("connect");
        client
            .offset_commit(
                "gd",
                &Committer::admin(),
                &[commit("od", 0, 0), commit("od", 1, 0)],
            )
            .await
            .expect("commit");
        let before = client.offset_fetch("gd", None).await.expect("fetch");
        assert_eq!(before.len(), 2, "{before:?}");
        assert_eq!(before[1].metadata.as_deref(), Some("p1"), "metadata kept");

        client
            .offset_delete("gd", "od", &[0])
            .await
            .expect("offset delete");
        let parts = [TopicPartitions {
            topic: "od".into(),
            partitions: vec![0, 1],
        }];
        let after = client
            .offset_fetch("gd", Some(&parts))
            .await
            .expect("fetch");
        let offsets: Vec<(i32, i64)> = after.iter().map(|c| (c.partition, c.offset)).collect();
        assert_eq!(
            offsets,
            vec![(0, -1), (1, 0)],
            "only partition 0's commit is gone"
        );
    });
}

#[test]
fn offset_delete_is_refused_while_a_member_consumes_the_topic() {
    let broker = DevBroker::start();
    broker.ok(&["topic", "create", "busy", "--partitions", "1"], b"");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = Arc::new(
            Client::connect(ClientConfig::new(broker.kafka.clone()))
                .await
                .expect("connect"),
        );
        let mut config = GroupConsumerConfig::new("gs", vec!["busy".to_string()]);
        config.auto_offset_reset = OffsetReset::Earliest;
        config.heartbeat_interval = Duration::from_millis(500);
        let mut member = GroupConsumer::new(client.clone(), config).expect("member");
        member.ensure_joined().await.expect("join");
        member.commit().await.expect("commit");
        member.seek("busy", 0, 0).expect("seek");
        member
            .commit()
            .await
            .expect("commit is a no-op when nothing moved");

        let desc = client.describe_group("gs").await.expect("describe");
        assert_eq!(desc.members.len(), 1);
        assert_eq!(desc.members[0].member_id, member.member_id());
        assert_eq!(desc.members[0].subscribed_topics, vec!["busy".to_string()]);

        let err = client
            .offset_delete("gs", "busy", &[0])
            .await
            .expect_err("must be refused");
        assert_eq!(
            err.kafka_error(),
            Some(ResponseError::GroupSubscribedToTopic),
            "{err}"
        );
        member.close().await.expect("close");
        let desc = client.describe_group("gs").await.expect("describe");
        assert!(desc.members.is_empty(), "close left the group: {desc:?}");
    });
}
