//! Runs the real `runnel` binary: a `runnel dev` broker on free ports in a
//! temporary directory, and one-shot CLI commands against it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Startup includes recovery and binding; generous for a loaded CI machine.
const READY_DEADLINE: Duration = Duration::from_secs(60);
/// Upper bound for any single CLI command.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// A `runnel dev` child process, killed when dropped.
pub(crate) struct DevBroker {
    child: Child,
    /// Kafka listener address from the ready line.
    pub(crate) kafka: String,
    /// Admin HTTP address from the ready line.
    #[allow(dead_code)]
    pub(crate) admin: String,
    dir: tempfile::TempDir,
}

impl DevBroker {
    /// Starts `runnel dev` on port 0 and waits for its ready line.
    pub(crate) fn start() -> DevBroker {
        Self::start_in(tempfile::tempdir().expect("tempdir"), "127.0.0.1:0")
    }

    /// Stops the broker gracefully (SIGTERM), keeping its data directory and
    /// address so it can be started again as a production restart would.
    pub(crate) fn stop_keeping_data(mut self) -> StoppedBroker {
        let status = self.stop();
        assert!(status.success(), "runnel dev exited with {status:?}");
        StoppedBroker {
            listen: self.kafka.clone(),
            dir: std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir")),
        }
    }

    fn start_in(dir: tempfile::TempDir, listen: &str) -> DevBroker {
        let stderr = File::options()
            .create(true)
            .append(true)
            .open(dir.path().join("broker.stderr"))
            .expect("stderr file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["dev", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(["--listen", listen, "--admin-listen", "127.0.0.1:0"])
            .env_remove("RUNNEL_BOOTSTRAP_SERVER")
            .env("RUST_LOG", "info")
            // Groups form at once instead of waiting for more members, and a
            // small offsets topic keeps start-up fast.
            .env("RUNNEL_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
            .env("RUNNEL_OFFSETS_TOPIC_NUM_PARTITIONS", "4")
            // Tests run in parallel: the metadata quorum listener takes any free port.
            .env("RUNNEL_CONTROLLER_LISTEN", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn runnel dev");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Receiver gone: keep reading and discarding.
                }
            }
        });
        let mut broker = DevBroker {
            child,
            kafka: String::new(),
            admin: String::new(),
            dir,
        };
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((kafka, admin)) = parse_ready_line(&line) {
                        broker.kafka = kafka;
                        broker.admin = admin;
                        return broker;
                    }
                }
                Err(_) => panic!(
                    "runnel dev printed no ready line within {READY_DEADLINE:?}; stderr:\n{}",
                    broker.stderr()
                ),
            }
        }
    }

    /// Runs `runnel -b <this broker> args...` with `stdin`.
    pub(crate) fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut full = vec!["-b", self.kafka.as_str()];
        full.extend_from_slice(args);
        runnel(&full, stdin)
    }

    /// Like [`DevBroker::run`], but the command must succeed.
    pub(crate) fn ok(&self, args: &[&str], stdin: &[u8]) -> String {
        let run = self.run(args, stdin);
        assert!(
            run.status.success(),
            "runnel {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}\nbroker stderr:\n{}",
            run.status,
            run.stdout,
            run.stderr,
            self.stderr()
        );
        run.stdout
    }

    /// Starts `runnel -b <this broker> args...` in the background, collecting
    /// its stdout lines as they come.
    pub(crate) fn spawn(&self, args: &[&str]) -> Background {
        let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
            .args(["-b", self.kafka.as_str()])
            .args(args)
            .env_remove("RUNNEL_BOOTSTRAP_SERVER")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn runnel");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stdout = child.stdout.take().expect("stdout");
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lock").push(line);
            }
        });
        let err_text = Arc::new(Mutex::new(String::new()));
        let err_sink = err_text.clone();
        let mut err_pipe = child.stderr.take().expect("stderr");
        let stderr = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err_sink
                    .lock()
                    .expect("lock")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            err_sink.lock().expect("lock").clone()
        });
        Background {
            child,
            args: args.iter().map(|a| a.to_string()).collect(),
            lines,
            err_text,
            reader: Some(reader),
            stderr: Some(stderr),
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub(crate) fn terminate(mut self) -> ExitStatus {
        self.stop()
    }

    fn stop(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        wait_with_deadline(&mut self.child, READY_DEADLINE)
            .expect("runnel dev did not stop after SIGTERM")
    }

    /// What the broker logged so far.
    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.stderr")).unwrap_or_default()
    }
}

impl Drop for DevBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A stopped `runnel dev` broker's data directory and Kafka address.
pub(crate) struct StoppedBroker {
    listen: String,
    dir: tempfile::TempDir,
}

impl StoppedBroker {
    /// Starts `runnel dev` again on the same address and data directory.
    pub(crate) fn start_again(self) -> DevBroker {
        DevBroker::start_in(self.dir, &self.listen)
    }
}

/// A CLI command running in the background, killed when dropped.
pub(crate) struct Background {
    child: Child,
    args: Vec<String>,
    lines: Arc<Mutex<Vec<String>>>,
    err_text: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    /// Stdout lines printed so far.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Stderr printed so far.
    pub(crate) fn stderr_so_far(&self) -> String {
        self.err_text.lock().expect("lock").clone()
    }

    /// Whether the command is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGINT (Ctrl-C) and waits for the command to finish; returns
    /// its status, every stdout line and its stderr.
    pub(crate) fn interrupt(self) -> (ExitStatus, Vec<String>, String) {
        self.signal("INT")
    }

    /// Like [`Background::interrupt`] with SIGTERM.
    pub(crate) fn terminate(self) -> (ExitStatus, Vec<String>, String) {
        self.signal("TERM")
    }

    fn signal(mut self, name: &str) -> (ExitStatus, Vec<String>, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([format!("-{name}").as_str(), &pid])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name} {pid} failed");
        let status = wait_with_deadline(&mut self.child, COMMAND_DEADLINE)
            .unwrap_or_else(|| panic!("runnel {:?} did not stop after SIG{name}", self.args));
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, self.lines(), stderr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` every 100 ms until it holds, panicking with `what`
/// after `limit`.
pub(crate) fn wait_until(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn parse_ready_line(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("runnel-broker ready ")?;
    let mut kafka = None;
    let mut admin = None;
    for field in rest.split_whitespace() {
        if let Some(v) = field.strip_prefix("kafka=") {
            kafka = Some(v.to_string());
        } else if let Some(v) = field.strip_prefix("admin=") {
            admin = Some(v.to_string());
        }
    }
    Some((kafka?, admin?))
}

/// The outcome of one CLI run.
pub(crate) struct Run {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs `runnel args...`, feeding `stdin`, killing it after [`COMMAND_DEADLINE`].
pub(crate) fn runnel(args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_runnel"))
        .args(args)
        .env_remove("RUNNEL_BOOTSTRAP_SERVER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn runnel");
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        // A command that exits early closes its stdin; that is not our failure.
        let _ = input.write_all(&data);
    });
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = match wait_with_deadline(&mut child, COMMAND_DEADLINE) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "runnel {args:?} did not finish within {COMMAND_DEADLINE:?}; stderr:\n{}",
                err.join().unwrap_or_default()
            );
        }
    };
    let _ = writer.join();
    Run {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
