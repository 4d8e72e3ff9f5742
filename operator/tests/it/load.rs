//! Load for operator tests: [`CheckedProducer`] runs `e2e/checker.py` (an idempotent
//! `acks=all` confluent-kafka producer, a third-party client) against a cluster while the test
//! restarts, rolls or scales it, then has it verify that every acknowledged record is stored
//! exactly once, in order, with no gap.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records per second the checker sends: enough to keep every partition busy through a
/// restart, few enough that its verification reads back quickly on a 2-core machine.
const RATE: u32 = 400;
/// How long the checker may take to stop, flush and read everything back.
const FINISH_TIMEOUT: Duration = Duration::from_secs(240);

/// A running `python3 e2e/checker.py --stop-file .. --progress`; killed on drop.
pub(crate) struct CheckedProducer {
    child: Child,
    /// Holds the stop file and the checker's stderr.
    dir: tempfile::TempDir,
    /// The latest `acked N` the checker printed.
    acked: Arc<AtomicU64>,
    /// The `ok:` line, once printed.
    ok: Arc<Mutex<Option<String>>>,
}

fn checker_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../e2e/checker.py")
}

/// Fails (never skips) when python3 or confluent-kafka is missing: the load is part of what
/// the tests prove.
fn require_python() {
    let probe = Command::new("python3")
        .args(["-c", "import confluent_kafka"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match probe {
        Err(e) => panic!(
            "CheckedProducer needs python3 with confluent-kafka, but python3 cannot run ({e}); \
             install python3 and `pip install confluent-kafka` (scripts/test.sh does)"
        ),
        Ok(out) if !out.status.success() => panic!(
            "CheckedProducer needs the confluent-kafka Python package: `pip install \
             confluent-kafka` (scripts/test.sh does); python3 said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }
}

impl CheckedProducer {
    /// Starts producing to the existing `topic` (with `partitions` partitions) through
    /// `bootstrap`.
    pub(crate) fn start(bootstrap: &str, topic: &str, partitions: i32) -> CheckedProducer {
        require_python();
        let dir = tempfile::Builder::new()
            .prefix("runnel-checker-")
            .tempdir()
            .expect("tempdir");
        let stderr = std::fs::File::create(dir.path().join("stderr")).expect("stderr file");
        let mut child = Command::new("python3")
            .arg(checker_script())
            .args(["--bootstrap", bootstrap, "--topic", topic])
            .args(["--partitions", &partitions.to_string()])
            .args(["--rate", &RATE.to_string(), "--progress"])
            .arg("--stop-file")
            .arg(dir.path().join("stop"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start python3 e2e/checker.py");
        let stdout = child.stdout.take().expect("piped stdout");
        let acked = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(Mutex::new(None));
        {
            let (acked, ok) = (acked.clone(), ok.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("acked ") {
                        if let Ok(n) = n.trim().parse() {
                            acked.store(n, Ordering::Relaxed);
                        }
                    } else if line.starts_with("ok:") {
                        *ok.lock().expect("lock") = Some(line);
                    }
                }
            });
        }
        CheckedProducer {
            child,
            dir,
            acked,
            ok,
        }
    }

    /// Records acknowledged so far (as of the checker's last progress line).
    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until at least `n` records are acknowledged, failing after `secs` seconds or when
    /// the checker exits.
    pub(crate) async fn wait_acked(&mut self, n: u64, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.acked() < n {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the checker exited ({status}) after {} acks:\n{}",
                    self.acked(),
                    self.stderr_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} records acknowledged after {secs}s; checker stderr:\n{}",
                self.acked(),
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops producing, waits for the checker's verification and returns its `ok:` line;
    /// fails with the checker's assertion when it exits non-zero.
    pub(crate) async fn finish(mut self) -> String {
        std::fs::write(self.dir.path().join("stop"), b"").expect("create stop file");
        let deadline = Instant::now() + FINISH_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the checker") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the checker did not finish within {FINISH_TIMEOUT:?}; stderr:\n{}",
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            status.success(),
            "the checker failed ({status}):\n{}",
            self.stderr_tail()
        );
        // The stdout reader hands over the ok line once it reaches the end of the pipe.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self.ok.lock().expect("lock").clone() {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "the checker exited 0 without an ok: line; stderr:\n{}",
                self.stderr_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for CheckedProducer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
