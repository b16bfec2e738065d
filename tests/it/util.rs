//! Running the binary (ripgrep's `tests/util.rs` in miniature).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tempfile::TempDir;

/// A `tollgate` invocation being prepared.
pub struct Tollgate {
    command: Command,
    stdin: Option<Vec<u8>>,
    dir: TempDir,
}

/// What a run produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// `tollgate ARGS…` with an empty environment (but `PATH`) in a fresh
/// temporary directory.
pub fn tollgate(args: &[&str]) -> Tollgate {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
    command.env_clear().current_dir(dir.path()).args(args);
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    Tollgate {
        command,
        stdin: None,
        dir,
    }
}

impl Tollgate {
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.command.env(name, value);
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.command.args(args);
        self
    }

    pub fn stdin(self, text: &str) -> Self {
        self.stdin_bytes(text.as_bytes())
    }

    pub fn stdin_bytes(mut self, bytes: &[u8]) -> Self {
        self.stdin = Some(bytes.to_vec());
        self
    }

    /// One argument that need not be UTF-8.
    pub fn arg_os(mut self, arg: &std::ffi::OsStr) -> Self {
        self.command.arg(arg);
        self
    }

    /// Writes a file into the working directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn run(mut self) -> Run {
        self.command
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.command.spawn().unwrap();
        if let Some(text) = &self.stdin {
            child.stdin.take().unwrap().write_all(text).unwrap();
        }
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Runs with stdout closed before the command writes to it.
    pub fn run_with_closed_stdout(mut self) -> i32 {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = self.command.spawn().unwrap();
        drop(child.stdout.take());
        child.wait().unwrap().code().unwrap_or(-1)
    }
}

/// The JSON printed on stdout, pretty-printed for snapshots.
pub fn pretty_json(stdout: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    serde_json::to_string_pretty(&value).unwrap() + "\n"
}
