//! Runs the built `klaxon` binary as a child process, as an operator would.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use crate::helpers::{READ_TOKEN, SIGNING_SECRET, VERIFICATION_TOKEN, WRITE_TOKEN};

pub struct Process {
    pub child: Child,
    pub address: String,
    /// Everything the process wrote to stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
    /// The threads copying stdout and stderr into `output`.
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// The environment of a fully configured server on a free loopback port.
pub fn server_env(data_dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("KLAXON_LISTEN", "127.0.0.1:0".into()),
        ("KLAXON_DATA_DIR", data_dir.display().to_string()),
        ("SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
        ("SLACK_VERIFICATION_TOKEN", VERIFICATION_TOKEN.into()),
        ("KLAXON_READ_TOKENS", READ_TOKEN.into()),
        ("KLAXON_WRITE_TOKENS", WRITE_TOKEN.into()),
        ("KLAXON_LOG_FORMAT", "json".into()),
        ("RUST_LOG", "info".into()),
    ]
}

/// Sets `name` in a server environment, replacing its value if it has one.
pub fn set_env(env: &mut Vec<(&'static str, String)>, name: &'static str, value: &str) {
    env.retain(|(n, _)| *n != name);
    env.push((name, value.into()));
}

pub fn command(args: &[&str], env: &[(&str, String)]) -> Command {
    with_env(Command::new(env!("CARGO_BIN_EXE_klaxon")), args, env)
}

/// `klaxon serve`, run by bash after the shell commands `setup` (`ulimit`,
/// `trap`), whose settings it inherits.
pub fn serve_after(setup: &str, env: &[(&str, String)]) -> Command {
    let script = format!("{setup}; exec \"$0\" serve");
    with_env(
        Command::new("bash"),
        &["-c", &script, env!("CARGO_BIN_EXE_klaxon")],
        env,
    )
}

fn with_env(mut cmd: Command, args: &[&str], env: &[(&str, String)]) -> Command {
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd
}

/// Runs `klaxon serve` expecting it to refuse to start. A regression that
/// lets it start would otherwise hang the test: after 20 s it is killed and
/// the test fails.
pub fn serve_refused(env: &[(&str, String)]) -> std::process::Output {
    let mut child = command(&["serve"], env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "serve started instead of refusing: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Runs `klaxon check-store` on `data_dir` and fails the test, saying
/// `context` and what the check found, unless the store is clean. A check
/// that hangs (opening the store applies the journal through sled) is
/// killed after 60 s and fails the test rather than hang it.
pub fn assert_store_clean(data_dir: &Path, context: &str) {
    let dir = data_dir.display().to_string();
    let child = command(&["check-store", "--data-dir", &dir], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    let check = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("{context}: klaxon check-store (pid {pid}) did not finish within 60 s");
        });
    assert!(
        check.status.success(),
        "{context}: {}",
        String::from_utf8_lossy(&check.stdout)
    );
}

/// Starts `klaxon serve` and waits until it logs its listening address.
pub fn start_server(env: &[(&str, String)]) -> Process {
    start(command(&["serve"], env))
}

/// Starts `cmd` (a `klaxon serve`) and waits until it logs its listening address.
pub fn start(mut cmd: Command) -> Process {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(String::new()));
    let (addr_tx, addr_rx) = mpsc::channel();
    let mut readers = Vec::new();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = output.clone();
        let addr_tx = addr_tx.clone();
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                    if json["message"] == "klaxon listening" {
                        let _ = addr_tx.send(json["addr"].as_str().unwrap_or_default().to_owned());
                    }
                }
                let mut out = output.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        }));
    }
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("klaxon did not start: {}", output.lock().unwrap())
        });
    Process {
        child,
        address: format!("http://{addr}"),
        output,
        readers,
    }
}

impl Process {
    /// Waits up to `limit` for the process to end on its own; its exit
    /// status, or `None` (it is still running).
    pub fn wait_for_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: no shutdown, no final flush.
    /// Afterwards `output` holds everything the process wrote.
    pub fn kill_hard(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
