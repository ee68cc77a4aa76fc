//! The README's quick start, literally: `warren up` with the flags the README gives, then the
//! README's curl block and CLI block, read from the README and run by bash. If the README
//! and the binaries drift apart, this test fails.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::up::{Up, bin_dir, repo_root};

/// The README's text.
fn readme() -> String {
    std::fs::read_to_string(repo_root().join("README.md")).expect("reading README.md")
}

/// The flags of the README's `cargo run … -- up …` line.
fn up_flags(readme: &str) -> Vec<String> {
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run --release -p warren-cli -- up"))
        .expect("the README shows how to run `warren up`");
    let (_, flags) = line.split_once(" up ").expect("flags after `up`");
    flags.split_whitespace().map(str::to_owned).collect()
}

/// The first ```sh block after the line that starts with `marker`.
fn sh_block_after(readme: &str, marker: &str) -> String {
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("the README has {marker:?}"));
    let rest = &readme[start..];
    let open = rest.find("```sh\n").expect("a sh block follows") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    rest[open..open + close].to_owned()
}

/// Runs `script` with bash (`-e`: the first failing command fails the test) in a fresh
/// directory, with `warren` on the PATH and `WARREN_URL` set, on the child process only.
async fn bash(script: &str, url: &str) -> (bool, String, String) {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = Command::new("bash")
        .args(["-e", "-o", "pipefail", "-c", script])
        .env("PATH", path)
        .env("WARREN_URL", url)
        .current_dir(bin_dir())
        .stdin(Stdio::null())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the README's commands finish in time")
        .expect("running bash");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_quick_start_works_as_written() {
    let readme = readme();
    let flags = up_flags(&readme);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let up = Up::start("quick_start", &flags).await;

    // The curl block talks to localhost:8080; this system listens on a free port.
    let curl = sh_block_after(&readme, "With curl:").replace("localhost:8080", up.authority());
    let (ok, out, err) = bash(&curl, &up.url).await;
    assert!(
        ok,
        "the README's curl block failed:\n{curl}\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains(r#""state":"queued""#), "{out}");
    assert!(
        out.contains(r#""state":"succeeded""#),
        "the waited-for job succeeded: {out}"
    );
    assert!(out.contains(r#""line":"hello""#), "its log: {out}");
    assert!(
        out.contains(r#""code":"no_live_worker""#),
        "the GPU job, which no worker here can run, comes with a warning: {out}"
    );
    assert!(!out.contains(r#""status":5"#), "no 5xx answer: {out}");

    let cli = sh_block_after(&readme, "With the CLI");
    let (ok, out, err) = bash(&cli, &up.url).await;
    assert!(
        ok,
        "the README's CLI block failed:\n{cli}\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.starts_with("hello\n"), "{out}");
    assert!(out.contains(r#""stdout":"hi\n""#), "{out}");
    assert!(
        out.contains(" succeeded\n"),
        "`warren wait` says the sleep job succeeded: {out}"
    );

    up.stop().await;
}
