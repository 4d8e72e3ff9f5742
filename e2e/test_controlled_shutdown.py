"""Controlled shutdown: a SIGTERMed broker first asks the metadata quorum to move leadership of
its partitions to other in-sync replicas and to take it out of the ISRs, keeps serving fetches
while that happens, then stops. A rolling restart of a 3-broker cluster under an idempotent
`acks=all` confluent-kafka producer (checker.py) therefore waits for nothing (no produce waits out
its request timeout at a broker whose followers are gone) and loses nothing (every acknowledged
record is stored exactly once, in order, at the offset it was acknowledged with)."""

from __future__ import annotations

import signal
import threading
import time

from confluent_kafka.admin import AdminClient

from checker import AckedWriter, verify
from cluster import Cluster
from helpers import create_topic, wait_until

# Short timeouts so that restarted brokers rejoin and leadership returns within seconds; the
# producers' request timeout stays librdkafka's default 30 s, which is what a broker that
# stops without moving its leaderships first makes acks=all produces wait out.
CLUSTER_ARGS = ["--broker-session-timeout-ms", "2000", "--broker-heartbeat-interval-ms", "200",
                "--replica-lag-time-max-ms", "2000", "--default-replication-factor", "3",
                "--min-insync-replicas", "2", "--leader-imbalance-check-interval-seconds", "2"]
TOPIC = "rolling"
PARTITIONS = 6
# Well below the 30 s request timeout a stalled acks=all produce would wait out: a generous
# bound for a debug build on a busy machine, not a benchmark.
STOP_BOUND_S = 10.0


def leaders(bootstrap: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """partition -> (leader, replicas, isr) as Metadata from `bootstrap` reports them."""
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(TOPIC, timeout=5)
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in md.topics[TOPIC].partitions.values()}


def controller_id(bootstrap: str) -> int:
    return AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=5).controller_id


class LeadershipWatch:
    """Polls Metadata from the other brokers while `victim` shuts down and records whether they
    showed it leading nothing while its process was still running. The window can be shorter
    than a poll (a broker that moved its leaderships stops within milliseconds), so this is
    reported, not asserted; the broker's own log orders the move before the listener stops."""

    def __init__(self, cluster: Cluster, victim):
        self.admin = AdminClient({"bootstrap.servers": ",".join(
            b.bootstrap for b in cluster.brokers if b is not victim)})
        self.victim = victim
        self.moved_while_alive = False
        self.polls = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while self.victim.alive() and not self.moved_while_alive:
            try:
                md = self.admin.list_topics(TOPIC, timeout=5)
            except Exception:  # a poll racing a leadership change may fail; the next one counts
                continue
            self.polls += 1
            led = [p.id for p in md.topics[TOPIC].partitions.values() if p.leader == self.victim.node_id]
            # Read the process state after the metadata: "leads nothing" was seen while it ran.
            if not led and self.victim.alive():
                self.moved_while_alive = True

    def start(self) -> "LeadershipWatch":
        self._thread.start()
        return self

    def join(self) -> None:
        self._thread.join(timeout=60)


def test_rolling_sigterm_restart_under_acks_all_load_moves_leadership_first_and_loses_nothing(tmp_path):
    cluster = Cluster(tmp_path, 3, CLUSTER_ARGS)
    try:
        cluster.start()
        create_topic(cluster.bootstrap, TOPIC, PARTITIONS, replication_factor=3,
                     config={"min.insync.replicas": "2"})
        for p in range(PARTITIONS):
            cluster.wait_isr(TOPIC, p, 3)
        w = AckedWriter(cluster.bootstrap, TOPIC).start()
        stops: list[tuple[int, bool, float]] = []
        watched: list[bool] = []
        try:
            done: set[int] = set()
            while len(done) < len(cluster.brokers):
                w.wait_acks(w.ack_count() + 2_000, timeout=120)
                # The quorum leader whenever it has not been stopped yet, so its handover is
                # exercised as well as the partitions' (each restart usually elects another).
                controller = controller_id(cluster.bootstrap)
                victim = cluster.by_id(controller) if controller not in done \
                    else next(b for b in cluster.brokers if b.node_id not in done)
                others = ",".join(b.bootstrap for b in cluster.brokers if b is not victim)
                led = [p for p, (leader, _, _) in leaders(others).items() if leader == victim.node_id]
                assert led, f"broker {victim.node_id} leads no partition before its stop"
                assert w.in_flight() > 0 or w.ack_count() > 0

                watch = LeadershipWatch(cluster, victim).start()
                t0 = time.monotonic()
                victim.proc.send_signal(signal.SIGTERM)
                code = victim.proc.wait(timeout=60)
                stopped_after = time.monotonic() - t0
                watch.join()
                stops.append((victim.node_id, victim.node_id == controller, stopped_after))
                done.add(victim.node_id)

                assert code == 0, f"broker {victim.node_id} exited with {code}:\n{victim.stderr()[-3000:]}"
                assert stopped_after < STOP_BOUND_S, \
                    f"broker {victim.node_id} (leading {led}) took {stopped_after:.1f}s to stop after SIGTERM"
                # Leadership moved while the broker still served: its log says so before the
                # listener stopped, and the others' metadata agrees once it is gone.
                log = victim.stderr()
                moved_at = log.find("controlled shutdown: leadership moved to other in-sync replicas")
                stopping_at = log.find("shutting down: no new connections")
                assert 0 <= moved_at < stopping_at, \
                    f"broker {victim.node_id} did not move its leaderships before it stopped serving:\n{log[-3000:]}"
                now_led = [p for p, (leader, _, _) in leaders(others).items() if leader == victim.node_id]
                assert not now_led, f"broker {victim.node_id} still leads {now_led} after its exit"
                watched.append(watch.moved_while_alive)

                victim.start_again()
                cluster.wait_registered(3)
                # The restarted broker catches up as a follower and rejoins every ISR ...
                for p in range(PARTITIONS):
                    cluster.wait_isr(TOPIC, p, 3)
                # ... and the controller's preferred-leader rebalance gives it its partitions back.
                wait_until(lambda: all(leader == replicas[0]
                                       for leader, replicas, _ in leaders(cluster.bootstrap).values()),
                           60, what="every partition led by its preferred replica again")
            w.wait_acks(w.ack_count() + 2_000, timeout=120)
        finally:
            w.stop()
        print("SIGTERM to exit: " + ", ".join(
            f"broker {n}{' (quorum leader)' if ctl else ''} {s:.2f}s" for n, ctl, s in stops)
            + f"; others' metadata showed the move before exit in {sum(watched)} of {len(watched)} stops")
        assert any(ctl for _, ctl, _ in stops), "no stop hit the quorum leader"
        assert not w.errors, f"{len(w.errors)} delivery errors, first: {w.errors[:1]}"
        report = verify(cluster.bootstrap, w, PARTITIONS)
        assert report.acknowledged >= 8_000
    finally:
        cluster.stop()


def test_every_broker_stops_when_all_are_sigtermed_at_once(tmp_path):
    """SIGTERM to all three brokers at the same moment (a node drain, `docker compose down`):
    each one still exits, within its controlled shutdown timeout and a grace period, while the
    metadata changes under it (the others' fences and leadership moves). Repeated, since the
    interleavings differ from run to run (a broker once hung here holding a read guard on the
    metadata while the state machine waited to publish)."""
    for attempt in range(3):
        cluster = Cluster(tmp_path / f"run{attempt}", 3,
                          CLUSTER_ARGS + ["--controlled-shutdown-timeout-ms", "5000"])
        try:
            cluster.start()
            create_topic(cluster.bootstrap, TOPIC, PARTITIONS, replication_factor=3)
            cluster.wait_isr(TOPIC, 0, 3)
            for b in cluster.brokers:
                b.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 60
            for b in cluster.brokers:
                left = max(1.0, deadline - time.monotonic())
                try:
                    code = b.proc.wait(timeout=left)
                except Exception:
                    raise AssertionError(
                        f"attempt {attempt}: broker {b.node_id} did not exit within 60 s of SIGTERM; "
                        f"its log ends with:\n{b.stderr()[-3000:]}")
                assert code == 0, f"attempt {attempt}: broker {b.node_id} exited with {code}"
        finally:
            cluster.stop()
